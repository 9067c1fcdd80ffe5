import Logging
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A bound RPC listener. `run()` serves connections until the task running
/// it is cancelled; then every connection and in-flight call is cancelled and
/// awaited, so nothing outlives it.
public final class RPCServer: Sendable {
    public let localAddress: RPCAddress
    let listener: NIOAsyncChannel<(NIOAsyncChannel<Frame, Frame>, EventLoopFuture<PeerInfo>), Never>
    let services: RPCServices
    let configuration: RPCConfiguration

    private init(
        listener: NIOAsyncChannel<(NIOAsyncChannel<Frame, Frame>, EventLoopFuture<PeerInfo>), Never>,
        localAddress: RPCAddress, services: RPCServices, configuration: RPCConfiguration
    ) {
        self.listener = listener
        self.localAddress = localAddress
        self.services = services
        self.configuration = configuration
    }

    /// Binds `address` (port 0 picks a free port; see `localAddress`).
    public static func bind(
        _ address: RPCAddress, services: RPCServices, configuration: RPCConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RPCServer {
        let bootstrap = ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        let initializer: @Sendable (Channel) -> EventLoopFuture<(NIOAsyncChannel<Frame, Frame>, EventLoopFuture<PeerInfo>)> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try Pipeline.configure(channel, role: .server, configuration: configuration, sinks: services.sinks)
            }
        }
        let listener: NIOAsyncChannel<(NIOAsyncChannel<Frame, Frame>, EventLoopFuture<PeerInfo>), Never>
        let bound: RPCAddress
        switch address {
        case .tcp(let host, let port):
            listener = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
            bound = .tcp(host: host, port: listener.channel.localAddress?.port ?? port)
        case .unix(let path):
            listener = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            bound = address
        }
        return RPCServer(listener: listener, localAddress: bound, services: services, configuration: configuration)
    }

    public func run() async throws {
        try await withTaskCancellationHandler {
            try await listener.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await (connection, handshake) in connections {
                            let executor = EventLoopExecutor(connection.channel.eventLoop)
                            group.addTask(executorPreference: executor) { await self.serve(connection, handshake: handshake, on: executor) }
                        }
                    } catch is CancellationError {
                        // run() was cancelled: the normal way to stop.
                    } catch {
                        configuration.logger.error("listener failed", metadata: ["error": "\(error)"])
                    }
                }
            }
        } onCancel: {
            // The accept loop does not wake on cancellation by itself.
            listener.channel.close(promise: nil)
        }
        if case .unix(let path) = localAddress {
            // NIO leaves the socket file behind; the next bind would replace
            // it, but a stopped server should not leave litter in /tmp.
            unlink(path)
        }
    }

    /// Runs on the connection's event loop (`executor`), and so do its calls:
    /// a small call then goes from the socket to its handler and back
    /// without leaving that thread. Handlers await anything heavy elsewhere.
    private func serve(_ connection: NIOAsyncChannel<Frame, Frame>, handshake: EventLoopFuture<PeerInfo>, on executor: EventLoopExecutor) async {
        do {
            try await connection.executeThenClose { inbound, _ in
                let peer = try await handshake.get()
                let session = ServerConnection(peer: peer, services: services, outbound: FrameWriter(channel: connection.channel),
                                               executor: executor, logger: configuration.logger)
                await withTaskCancellationHandler {
                    await session.run(inbound)
                } onCancel: {
                    connection.channel.close(promise: nil)
                }
            }
        } catch {
            // Already logged with its reason by ConnectionHandler.
            configuration.logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }
}
