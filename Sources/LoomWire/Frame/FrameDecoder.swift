import NIOCore

/// Splits the byte stream into frames. Every check that can be made from the
/// header is made before waiting for the body, so an oversized or garbage
/// header fails at once instead of making us buffer up to its claimed length.
///
/// A request for a method with an `AttachmentSink` is not gathered: once its
/// message is in, its attachment is handed to the sink's receiver read by
/// read, and the frame is delivered with an empty attachment and a landing.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    public let maxFrameSize: Int
    let sinks: [UInt32: any AttachmentSink]
    let gate: HandshakeGate?
    /// The request whose attachment is arriving, if one is.
    private var streaming: StreamingAttachment?

    public init(maxFrameSize: Int) {
        self.init(maxFrameSize: maxFrameSize, sinks: [:], gate: nil)
    }

    init(maxFrameSize: Int, sinks: [UInt32: any AttachmentSink], gate: HandshakeGate?) {
        precondition(maxFrameSize >= FrameHeader.size, "max frame size must fit a header")
        self.maxFrameSize = maxFrameSize
        self.sinks = sinks
        self.gate = gate
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        if streaming != nil { return receiveAttachment(from: &buffer) }
        guard let header = try FrameHeader.peek(buffer) else { return nil }
        guard header.frameLength <= maxFrameSize else {
            throw WireError(.frameTooLarge, "frame of \(header.frameLength) bytes exceeds the maximum of \(maxFrameSize); split the payload or raise maxFrameSize on both sides")
        }
        if header.kind == .request, header.attachmentLength > 0, gate?.isOpen == true, let sink = sinks[header.method] {
            return startStreaming(header, into: sink, from: &buffer)
        }
        guard buffer.readableBytes >= header.frameLength else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        let message = buffer.readSlice(length: Int(header.messageLength))!
        let attachment = buffer.readSlice(length: Int(header.attachmentLength))!
        return Frame(header: header, message: message, attachment: attachment)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if seenEOF, let streaming {
            throw WireError(.truncatedFrame, "connection closed inside an attachment (\(streaming.remaining) of its \(streaming.header.attachmentLength) bytes missing)")
        }
        if seenEOF && buffer.readableBytes > 0 {
            throw WireError(.truncatedFrame, "connection closed inside a frame (\(buffer.readableBytes) bytes of it arrived)")
        }
        return nil
    }

    /// Waits for the message, then asks the sink where the attachment goes.
    private mutating func startStreaming(_ header: FrameHeader, into sink: any AttachmentSink, from buffer: inout ByteBuffer) -> Frame? {
        guard buffer.readableBytes >= FrameHeader.size + Int(header.messageLength) else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        let message = buffer.readSlice(length: Int(header.messageLength))!
        var attachment = StreamingAttachment(header: header, message: message, remaining: Int(header.attachmentLength))
        do {
            attachment.receiver = try sink.receiver(for: header, message: message)
        } catch {
            attachment.refusal = error
        }
        streaming = attachment
        return receiveAttachment(from: &buffer)
    }

    private mutating func receiveAttachment(from buffer: inout ByteBuffer) -> Frame? {
        guard var attachment = streaming else { return nil }
        let count = min(buffer.readableBytes, attachment.remaining)
        if count > 0 {
            if let receiver = attachment.receiver {
                buffer.withUnsafeReadableBytes { receiver.receive(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            }
            buffer.moveReaderIndex(forwardBy: count)
            attachment.remaining -= count
        }
        guard attachment.remaining == 0 else {
            streaming = attachment
            return nil
        }
        streaming = nil
        return attachment.frame()
    }
}

/// A request whose message is in and whose attachment is arriving.
private struct StreamingAttachment {
    let header: FrameHeader
    let message: ByteBuffer
    var remaining: Int
    /// Nil once refused: the rest of the attachment is read and dropped.
    var receiver: (any AttachmentReceiver)?
    var refusal: WireError?

    init(header: FrameHeader, message: ByteBuffer, remaining: Int) {
        self.header = header
        self.message = message
        self.remaining = remaining
    }

    func frame() -> Frame {
        var frame = Frame(header: header, message: message)
        let outcome: Result<any Sendable, WireError> = if let refusal { .failure(refusal) } else { .success(receiver!.finish()) }
        frame.landing = AttachmentLanding(outcome)
        return frame
    }
}

/// Writes frames. A small frame is copied into one buffer: one write through
/// the pipeline and one `write` syscall instead of two or three of each,
/// which is most of what a small call costs beyond the socket. In a larger
/// one the header goes in its own small buffer and the sections are written
/// as they are, so a large attachment is never copied here.
public final class FrameEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = Frame
    public typealias OutboundOut = ByteBuffer

    /// Sections up to this size are copied: cheaper than another write.
    static let copiedSectionBytes = 4096

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        let sections = frame.message.readableBytes + frame.attachment.readableBytes
        var head = context.channel.allocator.buffer(capacity: FrameHeader.size + (sections <= Self.copiedSectionBytes ? sections : 0))
        frame.header.write(to: &head)
        if sections <= Self.copiedSectionBytes {
            head.writeImmutableBuffer(frame.message)
            head.writeImmutableBuffer(frame.attachment)
            context.write(wrapOutboundOut(head), promise: promise)
            return
        }
        let hasMessage = frame.message.readableBytes > 0
        let hasAttachment = frame.attachment.readableBytes > 0
        // The last write carries the caller's promise so it completes only
        // once the whole frame has been handed to the socket.
        context.write(wrapOutboundOut(head), promise: hasMessage || hasAttachment ? nil : promise)
        if hasMessage {
            context.write(wrapOutboundOut(frame.message), promise: hasAttachment ? nil : promise)
        }
        if hasAttachment {
            context.write(wrapOutboundOut(frame.attachment), promise: promise)
        }
    }
}

extension Frame {
    /// The frame's exact wire bytes, for fixtures and tests.
    public func encoded() -> ByteBuffer {
        var out = ByteBuffer()
        header.write(to: &out)
        out.writeImmutableBuffer(message)
        out.writeImmutableBuffer(attachment)
        return out
    }
}
