import NIOConcurrencyHelpers
import NIOCore

/// A client connection's calls by correlation id, and why the connection
/// ended once it has.
final class CallTable: Sendable {
    private struct State {
        var nextID: UInt64 = 1
        var inboxes: [UInt64: CallInbox] = [:]
        var closedReason: WireError?
    }

    private let state = NIOLockedValueBox(State())

    func open(capacity: Int) throws(WireError) -> (UInt64, CallInbox) {
        let inbox = CallInbox(capacity: capacity)
        let result: Result<UInt64, WireError> = state.withLockedValue { state in
            if let reason = state.closedReason { return .failure(reason) }
            let id = state.nextID
            state.nextID += 1
            state.inboxes[id] = inbox
            return .success(id)
        }
        return (try result.get(), inbox)
    }

    func inbox(_ id: UInt64) -> CallInbox? {
        state.withLockedValue { $0.inboxes[id] }
    }

    func finish(_ id: UInt64) {
        let inbox = state.withLockedValue { $0.inboxes.removeValue(forKey: id) }
        inbox?.fail(Self.finished)
    }

    /// Built once: every call ends this way, and a message naming the call
    /// cost a string and an allocation on each of them.
    private static let finished: any Error = WireError(.cancelled, "the call has finished")

    /// Fails every call, and every later `open`, with the first reason given.
    func closeAll(_ reason: WireError) {
        let inboxes = state.withLockedValue { state in
            state.closedReason = state.closedReason ?? reason
            defer { state.inboxes = [:] }
            return Array(state.inboxes.values)
        }
        for inbox in inboxes { inbox.fail(reason) }
    }
}

/// Hands each reply frame to its call's inbox as the frame is decoded, on
/// the event loop. A frame for a call that is gone (cancelled, timed out)
/// is dropped: the server may still be finishing it.
///
/// A full inbox stops the socket being read until its call takes a frame,
/// so a slow consumer pushes back on the server through TCP. It does so by
/// turning `autoRead` off, not by holding back `read`: a handler that
/// intercepts `read` is an outbound one, and every call's write would pass
/// through it.
final class ReplyRouter: ChannelInboundHandler {
    typealias InboundIn = Frame

    private let table: CallTable
    /// Why the connection is ending, once something said so.
    private var reason: WireError?
    /// Turns reading back on, from whichever thread makes room; made once,
    /// not for every frame.
    private var resumeReads: @Sendable () -> Void = {}

    init(table: CallTable) {
        self.table = table
    }

    func handlerAdded(context: ChannelHandlerContext) {
        resumeReads = { [channel = context.channel] in
            // Fails only on a closed channel, whose calls are failing anyway.
            channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .response, .streamItem, .streamEnd, .error:
            if frame.correlationID == 0, frame.kind == .error {
                reason = WireError(errorFrame: frame)
                return
            }
            guard let inbox = table.inbox(frame.correlationID) else { return }
            if !inbox.offer(frame, onRoom: resumeReads) {
                // With autoRead off the channel reads nothing more until
                // `resumeReads` turns it on, which reads at once.
                do { try context.channel.syncOptions?.setOption(.autoRead, value: false) } catch {}
            }
        case .request, .cancel, .ping:
            reason = WireError(.protocolViolation, "server sent a \(frame.kind) frame, which only clients send")
            context.close(promise: nil)
        }
    }

    /// The last handler: errors end here, kept as the reason calls fail with.
    /// (`ConnectionHandler` has already closed the connection and logged why.)
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        reason = reason ?? (error as? WireError ?? WireError(.connectionClosed, "connection failed: \(error)"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        table.closeAll(reason ?? WireError(.connectionClosed, "server closed the connection"))
        context.fireChannelInactive()
    }
}
