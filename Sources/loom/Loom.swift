import ArgumentParser

@main
struct Loom: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom",
        abstract: "Loom: LLM serving in Swift.",
        subcommands: [TokenizeCommand.self, GenerateCommand.self, ServeCommand.self, UpCommand.self, RouterCommand.self, WorkerCommand.self, BenchCommand.self])
}
