import Logging
import NIOCore
import NIOPosix

/// A client connection: many concurrent calls multiplexed by correlation id.
/// Obtained only through `withConnection`, which closes the socket when the
/// body returns. Replies reach their calls through the pipeline's
/// `ReplyRouter`, on the event loop, with no task in between.
public final class RPCConnection: Sendable {
    public let peer: PeerInfo
    let channel: Channel
    let configuration: RPCConfiguration
    /// The connection's event loop as a task executor. Replies are read
    /// there; a caller that wants the lowest latency makes its calls from a
    /// task that prefers it (`withTaskExecutorPreference(connection.executor)`),
    /// so that neither the request nor the reply crosses a thread.
    public let executor: EventLoopExecutor
    let calls: CallTable

    /// The server's address this connection reached: one of possibly
    /// several that its name resolves to.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    init(peer: PeerInfo, channel: Channel, calls: CallTable, configuration: RPCConfiguration) {
        self.peer = peer
        self.channel = channel
        self.calls = calls
        self.configuration = configuration
        self.executor = EventLoopExecutor(channel.eventLoop)
    }

    /// Connects, exchanges HELLOs, runs `body`, then closes the connection.
    public static func withConnection<Result: Sendable>(
        to address: RPCAddress,
        configuration: RPCConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (RPCConnection) async throws -> Result
    ) async throws -> Result {
        let calls = CallTable()
        let (channel, handshake) = try await connect(address, configuration, calls, eventLoopGroup)
        do {
            let peer = try await handshake.get()
            let result = try await body(RPCConnection(peer: peer, channel: channel, calls: calls, configuration: configuration))
            await close(channel, calls)
            return result
        } catch {
            await close(channel, calls)
            throw error
        }
    }

    private static func close(_ channel: Channel, _ calls: CallTable) async {
        calls.closeAll(WireError(.connectionClosed, "connection closed by its owner"))
        try? await channel.close()
    }

    private static func connect(
        _ address: RPCAddress, _ configuration: RPCConfiguration, _ calls: CallTable, _ group: any EventLoopGroup
    ) async throws -> (Channel, EventLoopFuture<PeerInfo>) {
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let initializer: @Sendable (Channel) -> EventLoopFuture<(Channel, EventLoopFuture<PeerInfo>)> = { channel in
            channel.eventLoop.makeCompletedFuture {
                let handshake = try Pipeline.addCodec(channel, role: .client, configuration: configuration)
                try channel.pipeline.syncOperations.addHandler(ReplyRouter(table: calls))
                return (channel, handshake)
            }
        }
        do {
            switch address {
            case .tcp(let host, let port):
                return try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
            case .unix(let path):
                return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
            }
        } catch {
            throw WireError(.unavailable, "cannot connect to \(address): \(error); is the server running?")
        }
    }

    func open(capacity: Int) throws(WireError) -> (UInt64, CallInbox) {
        try calls.open(capacity: capacity)
    }

    func finish(_ id: UInt64) {
        calls.finish(id)
    }
}
