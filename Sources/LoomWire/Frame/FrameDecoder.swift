import NIOCore

/// Splits the byte stream into frames. Every check that can be made from the
/// header is made before waiting for the body, so an oversized or garbage
/// header fails at once instead of making us buffer up to its claimed length.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    public let maxFrameSize: Int

    public init(maxFrameSize: Int) {
        precondition(maxFrameSize >= FrameHeader.size, "max frame size must fit a header")
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let header = try FrameHeader.peek(buffer) else { return nil }
        guard header.frameLength <= maxFrameSize else {
            throw WireError(.frameTooLarge, "frame of \(header.frameLength) bytes exceeds the maximum of \(maxFrameSize); split the payload or raise maxFrameSize on both sides")
        }
        guard buffer.readableBytes >= header.frameLength else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        let message = buffer.readSlice(length: Int(header.messageLength))!
        let attachment = buffer.readSlice(length: Int(header.attachmentLength))!
        return Frame(header: header, message: message, attachment: attachment)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if seenEOF && buffer.readableBytes > 0 {
            throw WireError(.truncatedFrame, "connection closed inside a frame (\(buffer.readableBytes) bytes of it arrived)")
        }
        return nil
    }
}

/// Writes frames. The header goes in its own small buffer and the sections
/// are written as they are, so a large attachment is never copied here.
public final class FrameEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = Frame
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        var head = context.channel.allocator.buffer(capacity: FrameHeader.size)
        frame.header.write(to: &head)
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
