import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure Loom's speed.",
        subcommands: [BenchModelCommand.self])
}
