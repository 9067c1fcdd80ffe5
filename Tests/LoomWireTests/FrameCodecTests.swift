import NIOCore
import NIOEmbedded
import Testing
@testable import LoomWire

@Suite("Wire frame codec")
struct FrameCodecTests {
    static let golden: [(String, [Frame])] = [
        ("request-streaming", [Frame(
            header: FrameHeader(kind: .request, flags: .serverStreaming, correlationID: 7, method: 42, timeoutMilliseconds: 1000),
            message: ByteBuffer(string: "abc"), attachment: ByteBuffer(bytes: [1, 2]))]),
        ("response", [Frame(header: FrameHeader(kind: .response, correlationID: 7, method: 42), message: ByteBuffer(string: "ok"))]),
        ("ping-pong", [.ping(pong: true)]),
        ("error", [.error(WireError(.unknownMethod, "no"), replyingTo: FrameHeader(kind: .request, correlationID: 9, method: 3))]),
        ("stream-item-end", [
            Frame(header: FrameHeader(kind: .streamItem, correlationID: 5, method: 1), attachment: ByteBuffer(bytes: [0xFF])),
            Frame(header: FrameHeader(kind: .streamEnd, correlationID: 5, method: 1)),
        ]),
    ]

    @Test("encoding matches the golden bytes", arguments: golden.map(\.0))
    func encodesGolden(name: String) throws {
        let frames = Self.golden.first { $0.0 == name }!.1
        var encoded = ByteBuffer()
        for frame in frames { encoded.writeImmutableBuffer(frame.encoded()) }
        #expect(encoded == (try Fixtures.bytes(name)))
    }

    @Test("the channel encoder writes the golden bytes", arguments: golden.map(\.0))
    func channelEncoderWritesGolden(name: String) throws {
        let channel = EmbeddedChannel(handler: FrameEncoder())
        for frame in Self.golden.first(where: { $0.0 == name })!.1 { try channel.writeOutbound(frame) }
        var written = ByteBuffer()
        while var piece = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&piece) }
        #expect(written == (try Fixtures.bytes(name)))
        _ = try channel.finish()
    }

    @Test("a small frame leaves the encoder as one buffer, a large one as its three sections")
    func encoderCopiesOnlySmallFrames() throws {
        func pieces(_ frame: Frame) throws -> [ByteBuffer] {
            let channel = EmbeddedChannel(handler: FrameEncoder())
            defer { _ = try? channel.finish() }
            try channel.writeOutbound(frame)
            var pieces: [ByteBuffer] = []
            while let piece = try channel.readOutbound(as: ByteBuffer.self) { pieces.append(piece) }
            return pieces
        }
        let header = FrameHeader(kind: .request, correlationID: 7, method: 3)
        let small = Frame(header: header, message: ByteBuffer(string: "hello"), attachment: ByteBuffer(repeating: 1, count: 100))
        #expect(try pieces(small) == [small.encoded()])
        let large = Frame(header: header, message: ByteBuffer(string: "hello"), attachment: ByteBuffer(repeating: 2, count: FrameEncoder.copiedSectionBytes))
        let written = try pieces(large)
        #expect(written.count == 3)
        #expect(written.last == large.attachment)
        #expect(written.reduce(into: ByteBuffer()) { $0.writeImmutableBuffer($1) } == large.encoded())
    }

    @Test("decoding the golden bytes gives the frames back", arguments: golden.map(\.0))
    func decodesGolden(name: String) throws {
        let channel = EmbeddedChannel(handler: FrameReader(FrameDecoder(maxFrameSize: 1 << 20)))
        try channel.writeInbound(try Fixtures.bytes(name))
        var decoded: [Frame] = []
        while let frame = try channel.readInbound(as: Frame.self) { decoded.append(frame) }
        #expect(decoded == Self.golden.first { $0.0 == name }!.1)
        #expect(try channel.finish().isClean)
    }

    @Test("every field of the header survives a round trip")
    func headerRoundTrip() throws {
        var rng = SplitMix64(state: 1)
        for _ in 0..<200 {
            let header = FrameHeader(
                kind: FrameKind.allCases.randomElement(using: &rng)!,
                flags: FrameFlags(rawValue: .random(in: 0...UInt16.max, using: &rng)),
                correlationID: .random(in: 0...UInt64.max, using: &rng),
                method: .random(in: 0...UInt32.max, using: &rng),
                messageLength: .random(in: 0...UInt32.max, using: &rng),
                attachmentLength: .random(in: 0...UInt32.max, using: &rng),
                timeoutMilliseconds: .random(in: 0...UInt32.max, using: &rng))
            var buffer = ByteBuffer()
            header.write(to: &buffer)
            #expect(buffer.readableBytes == FrameHeader.size)
            #expect(try FrameHeader.peek(buffer) == header)
        }
    }

    @Test("a header that is not LOOM, or of another version or kind, is refused")
    func refusesBadHeaders() throws {
        var good = try Fixtures.bytes("response")
        for (offset, value, code) in [(0, UInt8(0x4D), WireError.Code.badMagic), (4, 2, .unsupportedVersion), (5, 0, .unknownKind), (5, 99, .unknownKind)] {
            var bad = good
            bad.setInteger(value, at: offset)
            #expect(throws: WireError.self) { try FrameHeader.peek(bad) }
            do { _ = try FrameHeader.peek(bad) } catch { #expect(error.code == code) }
        }
        good.moveWriterIndex(to: FrameHeader.size - 1)
        #expect(try FrameHeader.peek(good) == nil)
    }
}
