import Foundation
import LoomPeer
import LoomTransfer
import LoomWire
import NIOCore

/// `client --mode rpc|transfer|until-error`: what the netns tests run on
/// the second host. Each mode prints one line the test waits for.
struct Client {
    enum Mode: String {
        case rpc, transfer
        /// Keep writing until the server dies.
        case untilError = "until-error"
    }

    var mode: Mode
    var server: RPCAddress
    /// "tcp" or "fabric".
    var backend: String
    var provider: String
    /// This host's address for a fabric endpoint.
    var bind: String
    var lanes: Int
    /// The server's region, from its LISTENING (or FABRIC) line.
    var descriptor: String
    var pages: Int

    func run() async throws {
        switch mode {
        case .rpc:
            try await RPCConnection.withConnection(to: server, configuration: .peer("client")) { connection in
                for i in 0..<100 {
                    let reply = try await connection.unary(method: PeerMethods.echo, RPCMessage(message: ByteBuffer(string: "ping \(i)")), timeout: .seconds(10))
                    guard reply.message == ByteBuffer(string: "ping \(i)") else { throw TransferError(.invalidRequest, "echo mismatch") }
                }
            }
            emit("OK rpc 100")
        case .transfer:
            let (remote, source, pageBytes) = try setup()
            try await withTransport { transport in
                try await transport.write(.paged(from: source, pages: Array(0..<pages), stride: pageBytes, to: remote, pages: Array(0..<pages), stride: pageBytes, pageLength: pageBytes, immediate: 1))
            }
            let expected = try source.read(offset: 0, count: remote.length).reduce(UInt64(0)) { $0 &+ UInt64($1) }
            let seen = try await RPCConnection.withConnection(to: server, configuration: .peer("client")) { connection in
                try await connection.unary(method: PeerMethods.inspect, RPCMessage(message: ByteBuffer(string: backend)), timeout: .seconds(10))
            }
            emit("OK transfer \(String(buffer: seen.message)) expected 1 \(expected)")
        case .untilError:
            let (remote, source, pageBytes) = try setup()
            do {
                try await withTransport(ackTimeout: .seconds(5)) { transport in
                    emit("STARTED")
                    for _ in 0..<100_000 {
                        try await transport.write(.single(from: source, offset: 0, count: pageBytes, to: remote, offset: 0, immediate: 2))
                    }
                }
                emit("NO ERROR")
            } catch {
                emit("ERROR \(error)")
            }
        }
    }

    /// The server's region and a source as large, with bytes whose sum the
    /// server can check.
    private func setup() throws -> (remote: RegionDescriptor, source: RegisteredRegion, pageBytes: Int) {
        let remote = try RegionDescriptor(hex: descriptor)
        let source = RegionTable(owner: "client", epoch: 1).register(length: remote.length)
        try source.fill(offset: 0, with: (0..<remote.length).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        return (remote, source, remote.length / pages)
    }

    private func withTransport<R: Sendable>(ackTimeout: Duration = .seconds(10), _ body: (any TransferTransport) async throws -> R) async throws -> R {
        switch backend {
        case "fabric":
            let endpoint = try FabricEndpoint(provider: provider, node: bind)
            defer { endpoint.close() }
            return try await FabricTransport.withTransport(to: server, endpoint: endpoint, configuration: .peer("client"), ackTimeout: ackTimeout) { try await body($0) }
        default:
            return try await TCPTransport.withTransport(to: server, lanes: lanes, configuration: .peer("client"), ackTimeout: ackTimeout) { try await body($0) }
        }
    }
}
