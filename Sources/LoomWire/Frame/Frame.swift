import NIOCore

/// One unit on the wire: header, a protobuf message section and a raw
/// attachment section (tensor bytes ride here, never inside the message).
public struct Frame: Sendable, Hashable {
    public var header: FrameHeader
    public var message: ByteBuffer
    public var attachment: ByteBuffer
    /// Set when the attachment went to an `AttachmentSink` instead of
    /// `attachment` (which is then empty); never sent.
    public var landing: AttachmentLanding?

    /// Builds a frame whose length fields match its sections.
    public init(header: FrameHeader, message: ByteBuffer = ByteBuffer(), attachment: ByteBuffer = ByteBuffer()) {
        var header = header
        header.messageLength = UInt32(message.readableBytes)
        header.attachmentLength = UInt32(attachment.readableBytes)
        self.header = header
        self.message = message
        self.attachment = attachment
    }

    public var kind: FrameKind { header.kind }
    public var correlationID: UInt64 { header.correlationID }

    public static func ping(pong: Bool = false) -> Frame {
        Frame(header: FrameHeader(kind: .ping, flags: pong ? .pong : [], correlationID: 0))
    }
}
