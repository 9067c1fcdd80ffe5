import ArgumentParser
import LoomWire

/// What `bench rpc` and `bench transfer` share: which peer server to
/// measure against, and how to print the result.
struct PeerBenchOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "A running peer server to measure against, as HOST:PORT (or tcp://HOST:PORT as its LISTENING line prints it). Without it, a peer server is started as a second process and stopped afterwards.",
        discussion: "Start one on another host with `loom bench peer-server --host ADDRESS --port PORT [--shm] [--fabric PROVIDER]`.",
        valueName: "host:port"))
    var connect: String?

    @Flag(name: .long, help: "Run Swift tasks on NIO's event loop threads, in this process and in the peer server it starts.")
    var nioExecutor = false

    @Flag(name: .long, help: "Print one JSON line instead of a table.")
    var json = false

    func validate() throws {
        if let connect, PeerAddress.parse(connect) == nil {
            throw ValidationError("--connect wants HOST:PORT with a port in 1...65535, e.g. 127.0.0.1:7461; got \"\(connect)\"")
        }
    }

    /// Runs `body` against the server `--connect` names, or against one
    /// started with `serverArguments` for this run.
    func withServer<R>(_ serverArguments: [String], _ body: (RPCAddress) async throws -> R) async throws -> R {
        if let connect, let address = PeerAddress.parse(connect) { return try await body(address) }
        let executor = nioExecutor ? ["--nio-executor"] : []
        return try await PeerServerChild.with(serverArguments + executor, progress: { stderr("loom bench: \($0)") }, body)
    }

    func print(_ table: String, json line: String) {
        Swift.print(json ? line : table)
    }
}
