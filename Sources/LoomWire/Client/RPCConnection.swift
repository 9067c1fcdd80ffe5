import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A client connection: many concurrent calls multiplexed by correlation id.
/// Obtained only through `withConnection`, which owns the task that reads
/// replies and closes the socket when the body returns.
public final class RPCConnection: Sendable {
    public let peer: PeerInfo
    let channel: Channel
    let outbound: NIOAsyncChannelOutboundWriter<Frame>
    let configuration: RPCConfiguration
    /// The connection's event loop as a task executor. Replies are read
    /// there; a caller that wants the lowest latency makes its calls from a
    /// task that prefers it (`withTaskExecutorPreference(connection.executor)`),
    /// so that neither the request nor the reply crosses a thread.
    public let executor: EventLoopExecutor
    private let calls = NIOLockedValueBox(Calls())

    struct Calls {
        var nextID: UInt64 = 1
        var inboxes: [UInt64: CallInbox] = [:]
        var closedReason: WireError?
    }

    init(peer: PeerInfo, channel: Channel, outbound: NIOAsyncChannelOutboundWriter<Frame>, configuration: RPCConfiguration) {
        self.peer = peer
        self.channel = channel
        self.outbound = outbound
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
        let (channel, handshake) = try await connect(address, configuration, eventLoopGroup)
        return try await channel.executeThenClose { inbound, outbound in
            let peer = try await handshake.get()
            let connection = RPCConnection(peer: peer, channel: channel.channel, outbound: outbound, configuration: configuration)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask(executorPreference: connection.executor) { await connection.readReplies(inbound) }
                defer { group.cancelAll() }
                let result = try await body(connection)
                connection.closeAll(WireError(.connectionClosed, "connection closed by its owner"))
                return result
            }
        }
    }

    private static func connect(
        _ address: RPCAddress, _ configuration: RPCConfiguration, _ group: any EventLoopGroup
    ) async throws -> (NIOAsyncChannel<Frame, Frame>, EventLoopFuture<PeerInfo>) {
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let initializer: @Sendable (Channel) -> EventLoopFuture<(NIOAsyncChannel<Frame, Frame>, EventLoopFuture<PeerInfo>)> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try Pipeline.configure(channel, role: .client, configuration: configuration)
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

    /// Routes every reply frame to its call's inbox. A frame for a call that
    /// is gone (cancelled, timed out) is dropped: the server may still be
    /// finishing it.
    private func readReplies(_ inbound: NIOAsyncChannelInboundStream<Frame>) async {
        var reason = WireError(.connectionClosed, "server closed the connection")
        do {
            for try await frame in inbound {
                switch frame.kind {
                case .response, .streamItem, .streamEnd, .error:
                    if frame.correlationID == 0, frame.kind == .error {
                        reason = WireError(errorFrame: frame)
                        continue
                    }
                    let inbox = calls.withLockedValue { $0.inboxes[frame.correlationID] }
                    await inbox?.push(frame)
                case .request, .cancel, .ping:
                    reason = WireError(.protocolViolation, "server sent a \(frame.kind) frame, which only clients send")
                    channel.close(promise: nil)
                }
            }
        } catch let error as WireError {
            reason = error
        } catch {
            reason = WireError(.connectionClosed, "connection failed: \(error)")
        }
        closeAll(reason)
    }

    func closeAll(_ reason: WireError) {
        let inboxes = calls.withLockedValue { calls in
            calls.closedReason = calls.closedReason ?? reason
            defer { calls.inboxes = [:] }
            return Array(calls.inboxes.values)
        }
        for inbox in inboxes { inbox.fail(reason) }
    }

    func open(capacity: Int) throws(WireError) -> (UInt64, CallInbox) {
        let inbox = CallInbox(capacity: capacity)
        let result: Result<UInt64, WireError> = calls.withLockedValue { calls in
            if let reason = calls.closedReason { return .failure(reason) }
            let id = calls.nextID
            calls.nextID += 1
            calls.inboxes[id] = inbox
            return .success(id)
        }
        return (try result.get(), inbox)
    }

    func finish(_ id: UInt64) {
        let inbox = calls.withLockedValue { $0.inboxes.removeValue(forKey: id) }
        inbox?.fail(WireError(.cancelled, "call \(id) finished"))
    }
}
