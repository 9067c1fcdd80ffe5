import Logging
import NIOCore

/// Connection-level protocol: the HELLO exchange, keepalive pings, and
/// closing the connection (with a logged reason) on any framing error.
/// Calls never see HELLO or PING frames; they see frames only once the
/// handshake is done.
///
/// It writes (HELLO, pongs, errors) but intercepts no outbound operation,
/// so it is an inbound handler: an outbound one sits in the path of every
/// call's write, passing it on for nothing.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundOut = Frame

    private var handshake: HandshakeStateMachine
    private let handshakePromise: EventLoopPromise<PeerInfo>
    private let gate: HandshakeGate?
    private let keepaliveInterval: TimeAmount?
    private let keepaliveMissLimit: Int
    private var missedKeepalives = 0
    private var readSinceTick = false
    private var keepaliveTask: RepeatedTask?
    private var closing = false
    private let logger: Logger

    init(
        handshake: HandshakeStateMachine,
        handshakePromise: EventLoopPromise<PeerInfo>,
        gate: HandshakeGate? = nil,
        keepaliveInterval: TimeAmount?,
        keepaliveMissLimit: Int,
        logger: Logger
    ) {
        self.handshake = handshake
        self.handshakePromise = handshakePromise
        self.gate = gate
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveMissLimit = keepaliveMissLimit
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        keepaliveTask?.cancel()
        // A connect that fails (nobody listening) closes a channel that was
        // never active, so channelInactive never runs; the handshake's
        // waiter must still hear about it. Completed promises ignore this.
        handshakePromise.fail(WireError(.unavailable, "the connection closed before it was established"))
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    private func activate(context: ChannelHandlerContext) {
        perform(handshake.channelActive(), context: context)
        guard keepaliveTask == nil, let interval = keepaliveInterval else { return }
        // Ticks on the event loop's own clock (not wall time), so the
        // behaviour is the same on EmbeddedEventLoop in tests.
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = loopBound.value
            handler.keepaliveTick(context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        readSinceTick = true
        if frame.kind == .ping, handshake.isEstablished {
            if !frame.header.flags.contains(.pong) {
                context.writeAndFlush(wrapOutboundOut(.ping(pong: true)), promise: nil)
            }
            return
        }
        let action = handshake.frameReceived(frame)
        if case .forward = action {
            // The same box goes on: wrapping the frame again would allocate.
            context.fireChannelRead(data)
        } else {
            perform(action, context: context)
        }
    }

    /// The peer is pinged after each interval in which it sent nothing, and
    /// dropped once it stays silent through more than the miss limit; any
    /// frame from it, a pong included, proves it alive.
    private func keepaliveTick(context: ChannelHandlerContext) {
        guard !closing else { return }
        guard handshake.isEstablished else {
            // A peer that connects and never finishes HELLO would otherwise
            // hold the connection open forever.
            missedKeepalives += 1
            if missedKeepalives > keepaliveMissLimit {
                close(context: context, WireError(.handshakeFailed, "no HELLO exchange within \(keepaliveMissLimit) keepalive intervals"), reply: nil)
            }
            return
        }
        if readSinceTick {
            readSinceTick = false
            missedKeepalives = 0
            return
        }
        missedKeepalives += 1
        if missedKeepalives > keepaliveMissLimit {
            close(context: context, WireError(.keepaliveTimeout, "peer sent nothing, not even a pong, through \(keepaliveMissLimit) keepalive intervals; it is dead or partitioned"), reply: nil)
        } else {
            context.writeAndFlush(wrapOutboundOut(.ping()), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let wire = error as? WireError ?? WireError(.protocolViolation, "connection failed: \(error)")
        let reply = Frame.error(wire, replyingTo: FrameHeader(kind: .error, correlationID: 0))
        close(context: context, wire, reply: reply)
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepaliveTask?.cancel()
        handshakePromise.fail(WireError(.connectionClosed, "connection closed before the HELLO exchange finished"))
        context.fireChannelInactive()
    }

    private func perform(_ action: HandshakeStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .write(let frame):
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        case .forward(let frame):
            context.fireChannelRead(wrapInboundOut(frame))
        case .completed(let peer, let reply):
            if let reply { context.writeAndFlush(wrapOutboundOut(reply), promise: nil) }
            gate?.isOpen = true
            logger.debug("handshake done", metadata: ["peer": "\(peer.hello.nodeName)", "version": "\(peer.version)"])
            handshakePromise.succeed(peer)
        case .fail(let error, let reply):
            close(context: context, error, reply: reply)
        }
    }

    /// Closes only this connection; the reason is logged because the peer may
    /// never see the ERROR frame we try to send it.
    private func close(context: ChannelHandlerContext, _ error: WireError, reply: Frame?) {
        guard !closing else { return }
        closing = true
        logger.warning("closing connection", metadata: [
            "reason": "\(error)",
            "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")",
        ])
        handshakePromise.fail(error)
        let closeNow: @Sendable (Result<Void, Error>) -> Void = { [channel = context.channel] _ in
            channel.close(promise: nil)
        }
        if let reply {
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete(closeNow)
        } else {
            context.close(promise: nil)
        }
        context.fireErrorCaught(error)
    }
}
