import NIOCore

/// Splits a connection's bytes into frames with `FrameDecoder` and hands
/// each frame on.
///
/// It does the part of `ByteToMessageHandler` that LoomWire uses and no
/// more: that handler's generic decode loop, its buffer wrapper and its
/// reentrancy and removal states cost about 1.5 µs of each small call on
/// this project's VMs, a tenth of what LoomWire adds to a socket round trip
/// (BENCHMARKS.md). After a framing error nothing more is decoded:
/// `ConnectionHandler` closes the connection with the error as its reason.
public final class FrameReader: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Frame

    private let processor: NIOSingleStepByteToMessageProcessor<FrameDecoder>
    /// Inside `process`: a handler further on may close the connection from
    /// there, and the processor must not be entered again.
    private var decoding = false
    /// The input ended (EOF or a framing error): later bytes and frames are dropped.
    private var ended = false

    public init(_ decoder: FrameDecoder) {
        self.processor = NIOSingleStepByteToMessageProcessor(decoder)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ended else { return }
        decoding = true
        defer { decoding = false }
        do {
            try processor.process(buffer: unwrapInboundIn(data)) { frame in try deliver(frame, context: context) }
        } catch {
            // A connection closed from inside this read owes nobody an
            // error about what followed in it.
            guard !(error is Ended), !ended else { return }
            ended = true
            context.fireErrorCaught(error)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        endOfInput(context: context)
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event as? ChannelEvent == .inputClosed { endOfInput(context: context) }
        context.fireUserInboundEventTriggered(event)
    }

    /// What is buffered is decoded one last time, so that a frame cut off by
    /// the peer is reported as truncated rather than lost without a word.
    private func endOfInput(context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        // Closed from inside a read: the frames still in that read have
        // nowhere to go, and the decode loop below it owns the buffer.
        guard !decoding else { return }
        do {
            try processor.finishProcessing(seenEOF: true) { frame in context.fireChannelRead(wrapInboundOut(frame)) }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    /// Stops the decode loop at the next whole frame once the input ended
    /// inside it: the rest of that read is not delivered or decoded further.
    private func deliver(_ frame: Frame, context: ChannelHandlerContext) throws {
        guard !ended else { throw Ended() }
        context.fireChannelRead(wrapInboundOut(frame))
    }

    private struct Ended: Error {}
}
