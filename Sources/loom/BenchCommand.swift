import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure Loom's speed, or any OpenAI-compatible server's.",
        subcommands: [BenchModelCommand.self, BenchServeCommand.self, BenchRPCCommand.self, BenchTransferCommand.self, BenchKVStoreCommand.self, BenchPeerServerCommand.self])
}
