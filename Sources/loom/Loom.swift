import ArgumentParser
import LoomPeer

@main
struct Loom: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Loom: LLM serving in Swift.",
        subcommands: [TokenizeCommand.self, GenerateCommand.self, ServeCommand.self, UpCommand.self, RouterCommand.self, WorkerCommand.self, KVStoreCommand.self, BenchCommand.self])

    /// `--nio-executor` (the RPC benches' flag) acts before parsing: Swift's
    /// global executor can only be replaced before the first task runs, and
    /// on macOS only from the main thread.
    @MainActor static func main() async {
        if CommandLine.arguments.contains("--nio-executor"), !runTasksOnNIOEventLoops() {
            stderr("loom: --nio-executor: this platform's Swift runtime cannot hand its tasks to NIO; running on the default executor")
        }
        await main(nil)
    }
}
