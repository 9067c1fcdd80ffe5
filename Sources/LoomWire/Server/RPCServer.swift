import Logging
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A bound RPC listener. `run()` serves connections until the task running
/// it is cancelled; then every connection is closed and every in-flight call
/// cancelled and awaited before it returns, so nothing outlives it.
public final class RPCServer: Sendable {
    public let localAddress: RPCAddress
    let listener: NIOAsyncChannel<AcceptedConnection, Never>
    let services: RPCServices
    let configuration: RPCConfiguration
    let connections: OpenConnections

    private init(
        listener: NIOAsyncChannel<AcceptedConnection, Never>, connections: OpenConnections,
        localAddress: RPCAddress, services: RPCServices, configuration: RPCConfiguration
    ) {
        self.listener = listener
        self.connections = connections
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
        let connections = OpenConnections()
        let initializer: @Sendable (Channel) -> EventLoopFuture<AcceptedConnection> = { channel in
            channel.eventLoop.makeCompletedFuture {
                let connection = try Pipeline.configureServer(channel, configuration: configuration, services: services)
                connections.add(connection)
                return connection
            }
        }
        let listener: NIOAsyncChannel<AcceptedConnection, Never>
        let bound: RPCAddress
        switch address {
        case .tcp(let host, let port):
            listener = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
            bound = .tcp(host: host, port: listener.channel.localAddress?.port ?? port)
        case .unix(let path):
            listener = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            bound = address
        }
        return RPCServer(listener: listener, connections: connections, localAddress: bound, services: services, configuration: configuration)
    }

    public func run() async throws {
        do {
            try await acceptUntilCancelled()
        } catch {
            await stopped()
            throw error
        }
        await stopped()
    }

    private func acceptUntilCancelled() async throws {
        try await withTaskCancellationHandler {
            try await listener.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in connections {
                            group.addTask { await self.serve(connection) }
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
    }

    private func stopped() async {
        // Including connections the accept loop never took.
        await connections.closeAll()
        if case .unix(let path) = localAddress {
            // NIO leaves the socket file behind; the next bind would replace
            // it, but a stopped server should not leave litter in /tmp.
            unlink(path)
        }
    }

    /// Waits out one connection: its calls run from its event loop (see
    /// `ServerConnection.start`), and when it closes, or the server stops,
    /// the calls still running are cancelled and awaited.
    private func serve(_ connection: AcceptedConnection) async {
        let channel = connection.channel
        await withTaskCancellationHandler {
            // A connection that fails (its HELLO included) is closed, with
            // its reason logged, by ConnectionHandler.
            try? await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
        await connection.calls.drain()
    }
}
