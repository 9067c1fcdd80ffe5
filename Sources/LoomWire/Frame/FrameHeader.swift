import NIOCore

/// What a frame is for. Raw values are on the wire: never renumber.
public enum FrameKind: UInt8, Sendable, CaseIterable {
    case request = 1
    case response = 2
    case streamItem = 3
    case streamEnd = 4
    case cancel = 5
    case error = 6
    case ping = 7
}

/// Bit flags in the header. Unknown bits are ignored so that a newer peer can
/// add flags without breaking this version.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// On a PING: this is the answer to a ping, not a ping to be answered.
    public static let pong = FrameFlags(rawValue: 1 << 0)
    /// On a REQUEST: the caller expects STREAM_ITEM frames ending in STREAM_END.
    public static let serverStreaming = FrameFlags(rawValue: 1 << 1)
}

/// The fixed 32-byte header in front of every frame; layout in proto/README.md.
/// All integers are big-endian.
public struct FrameHeader: Sendable, Hashable {
    public static let magic: UInt32 = 0x4C4F_4F4D  // "LOOM"
    public static let currentVersion: UInt8 = 1
    public static let size = 32

    public var version: UInt8
    public var kind: FrameKind
    public var flags: FrameFlags
    /// Pairs a request with its responses, stream items, cancel and error.
    /// The caller picks it; 0 is reserved for connection-level frames.
    public var correlationID: UInt64
    /// Which procedure a REQUEST calls; 0 is HELLO. Echoed on replies.
    public var method: UInt32
    public var messageLength: UInt32
    public var attachmentLength: UInt32
    /// On a REQUEST: milliseconds the caller will wait; 0 means no deadline.
    /// Relative, not absolute, so the peers' clocks need not agree.
    public var timeoutMilliseconds: UInt32

    public init(
        version: UInt8 = FrameHeader.currentVersion,
        kind: FrameKind,
        flags: FrameFlags = [],
        correlationID: UInt64,
        method: UInt32 = 0,
        messageLength: UInt32 = 0,
        attachmentLength: UInt32 = 0,
        timeoutMilliseconds: UInt32 = 0
    ) {
        self.version = version
        self.kind = kind
        self.flags = flags
        self.correlationID = correlationID
        self.method = method
        self.messageLength = messageLength
        self.attachmentLength = attachmentLength
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Header plus both sections: what the frame costs on the wire.
    public var frameLength: Int {
        Self.size + Int(messageLength) + Int(attachmentLength)
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.magic)
        buffer.writeInteger(version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(correlationID)
        buffer.writeInteger(method)
        buffer.writeInteger(messageLength)
        buffer.writeInteger(attachmentLength)
        buffer.writeInteger(timeoutMilliseconds)
    }

    /// Parses a header from the first `size` readable bytes without consuming
    /// them. Returns nil when fewer bytes have arrived; throws on bytes that
    /// cannot be a header of a version we speak.
    public static func peek(_ buffer: ByteBuffer) throws(WireError) -> FrameHeader? {
        guard buffer.readableBytes >= size else { return nil }
        let at = buffer.readerIndex
        let magic = buffer.getInteger(at: at, as: UInt32.self)!
        guard magic == Self.magic else {
            throw WireError(.badMagic, "frame does not start with LOOM magic (got 0x\(String(magic, radix: 16))); the peer is not speaking LoomWire")
        }
        let version = buffer.getInteger(at: at + 4, as: UInt8.self)!
        guard version == currentVersion else {
            throw WireError(.unsupportedVersion, "frame version \(version) is not supported (this side speaks \(currentVersion)); upgrade the older peer")
        }
        let rawKind = buffer.getInteger(at: at + 5, as: UInt8.self)!
        guard let kind = FrameKind(rawValue: rawKind) else {
            throw WireError(.unknownKind, "frame kind \(rawKind) is unknown")
        }
        return FrameHeader(
            version: version,
            kind: kind,
            flags: FrameFlags(rawValue: buffer.getInteger(at: at + 6, as: UInt16.self)!),
            correlationID: buffer.getInteger(at: at + 8, as: UInt64.self)!,
            method: buffer.getInteger(at: at + 16, as: UInt32.self)!,
            messageLength: buffer.getInteger(at: at + 20, as: UInt32.self)!,
            attachmentLength: buffer.getInteger(at: at + 24, as: UInt32.self)!,
            timeoutMilliseconds: buffer.getInteger(at: at + 28, as: UInt32.self)!
        )
    }
}
