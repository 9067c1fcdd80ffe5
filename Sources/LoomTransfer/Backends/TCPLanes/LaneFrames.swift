import LoomWire
import SwiftProtobuf

/// The tcp data lanes' framing, all little-endian. A lane opens with a
/// greeting, then carries parts one after another; the target answers each
/// part with a reply, in the order the parts came.
///
///     greeting  magic "LNH1" u32 | version u32 | token u64
///     part      magic "LNP1" u32 | message length u32 | payload length u64
///               | WriteRequest (protobuf) | payload (the segments' bytes, in order)
///     reply     magic "LNR1" u32 | code u32 | op id u64 | flags u32 | text length u32
///               | text (UTF-8: the refusal's message)
///
/// `code` is 0 for a write that landed, else a `TransferError.Code`; flag
/// bit 0 marks a duplicate. Anything else on a lane is a protocol error that
/// closes the lane.
enum LaneFrames {
    static let greetingMagic: UInt32 = 0x3148_4E4C  // "LNH1"
    static let partMagic: UInt32 = 0x3150_4E4C  // "LNP1"
    static let replyMagic: UInt32 = 0x3152_4E4C  // "LNR1"
    static let version: UInt32 = 1
    static let headerBytes = 16
    static let replyBytes = 24
    /// Bounds on what a peer can make us allocate or read into nowhere.
    static let maxMessageBytes = 1 << 20
    static let maxTextBytes = 1 << 16
    static let maxPayloadBytes = 1 << 31

    struct PartHeader: Equatable {
        var messageLength: Int
        var payloadLength: Int
    }

    struct Reply: Equatable {
        var opID: UInt64
        var code: UInt32 = 0
        var duplicate = false
        var text = ""
    }

    static func greeting(token: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        append(greetingMagic, to: &bytes)
        append(version, to: &bytes)
        append(token, to: &bytes)
        return bytes
    }

    /// The token of a well-formed greeting of our version.
    static func token(ofGreeting bytes: UnsafeRawBufferPointer) throws(TransferError) -> UInt64 {
        guard load(UInt32.self, bytes, 0) == greetingMagic else { throw protocolError("the lane's greeting has the wrong magic") }
        let version = load(UInt32.self, bytes, 4)
        guard version == Self.version else { throw protocolError("the lane speaks version \(version), this build \(Self.version)") }
        return load(UInt64.self, bytes, 8)
    }

    /// A part's header and message, ready to send ahead of its payload.
    static func part(_ request: Loom_Transfer_WriteRequest, payloadLength: Int) throws -> [UInt8] {
        let message: [UInt8] = try request.serializedBytes()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerBytes + message.count)
        append(partMagic, to: &bytes)
        append(UInt32(message.count), to: &bytes)
        append(UInt64(payloadLength), to: &bytes)
        return bytes + message
    }

    static func partHeader(_ bytes: UnsafeRawBufferPointer) throws(TransferError) -> PartHeader {
        guard load(UInt32.self, bytes, 0) == partMagic else { throw protocolError("a part header has the wrong magic") }
        let header = PartHeader(messageLength: Int(load(UInt32.self, bytes, 4)), payloadLength: Int(clamping: load(UInt64.self, bytes, 8)))
        guard header.messageLength <= maxMessageBytes, header.payloadLength <= maxPayloadBytes else {
            throw protocolError("a part declares \(header.messageLength) message bytes and \(header.payloadLength) payload bytes, over the lane's limits")
        }
        return header
    }

    static func encode(_ reply: Reply) -> [UInt8] {
        let text = Array(reply.text.utf8.prefix(maxTextBytes))
        var bytes: [UInt8] = []
        append(replyMagic, to: &bytes)
        append(reply.code, to: &bytes)
        append(reply.opID, to: &bytes)
        append(UInt32(reply.duplicate ? 1 : 0), to: &bytes)
        append(UInt32(text.count), to: &bytes)
        return bytes + text
    }

    /// The fixed part of a reply, and how many text bytes follow it.
    static func replyHeader(_ bytes: UnsafeRawBufferPointer) throws(TransferError) -> (Reply, textLength: Int) {
        guard load(UInt32.self, bytes, 0) == replyMagic else { throw protocolError("a reply has the wrong magic") }
        let textLength = Int(load(UInt32.self, bytes, 20))
        guard textLength <= maxTextBytes else { throw protocolError("a reply declares \(textLength) bytes of text") }
        let reply = Reply(opID: load(UInt64.self, bytes, 8), code: load(UInt32.self, bytes, 4), duplicate: load(UInt32.self, bytes, 16) & 1 != 0)
        return (reply, textLength)
    }

    static func protocolError(_ what: String) -> TransferError {
        TransferError(.invalidRequest, "tcp data lane protocol error: \(what); the lane is closed")
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func load<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, _ offset: Int) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
