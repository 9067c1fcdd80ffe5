import ArgumentParser

@main
struct GRPCEcho: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpc-echo",
        abstract: "grpc-swift-2 unary echo on loopback: the reference for Loom's RPC round trip (issue 4).",
        subcommands: [Serve.self, Bench.self]
    )
}
