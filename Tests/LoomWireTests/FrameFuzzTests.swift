import NIOCore
import NIOEmbedded
import Testing
@testable import LoomWire

/// Random, truncated, mutated and oversized input must close only the
/// connection that sent it, with a logged reason, and never crash.
@Suite("Wire decoder fuzzing")
struct FrameFuzzTests {
    @Test("random bytes close the connection with a logged reason", arguments: 0..<50)
    func randomBytes(seed: Int) throws {
        var rng = SplitMix64(state: UInt64(seed))
        let connection = try EmbeddedConnection()
        var bytes = ByteBuffer()
        for _ in 0..<Int.random(in: FrameHeader.size...512, using: &rng) { bytes.writeInteger(UInt8.random(in: 0...255, using: &rng)) }
        connection.feed(bytes)
        #expect(!connection.channel.isActive)
        #expect(connection.recorder.closeReasons.count == 1)
        #expect(try connection.inboundFrames().isEmpty)
    }

    @Test("a frame cut anywhere waits for the rest, then decodes whole")
    func truncatedFrames() throws {
        let whole = try Fixtures.bytes("request-streaming")
        for cut in 0..<whole.readableBytes {
            let connection = try EmbeddedConnection()
            connection.feed(whole.getSlice(at: 0, length: cut)!)
            #expect(connection.channel.isActive, "cut at \(cut)")
            #expect(try connection.inboundFrames().isEmpty)
            connection.feed(whole.getSlice(at: cut, length: whole.readableBytes - cut)!)
            // The first frame is not a HELLO request for method 0, so the
            // handshake refuses it: that it got that far proves it decoded.
            #expect(connection.recorder.closeReasons.first?.contains("expected a HELLO") == true, "cut at \(cut)")
        }
    }

    @Test("a frame over the maximum is refused from its header alone")
    func oversizedFrame() throws {
        let connection = try EmbeddedConnection(maxFrameSize: 4096)
        var header = ByteBuffer()
        FrameHeader(kind: .request, correlationID: 1, method: 5, messageLength: 10, attachmentLength: UInt32.max).write(to: &header)
        connection.feed(header)
        #expect(!connection.channel.isActive)
        #expect(connection.recorder.closeReasons.first?.contains("frameTooLarge") == true)
        let sent = try connection.outboundFrames()
        #expect(sent.map(\.kind) == [.error])
        #expect(WireError(errorFrame: sent[0]).code == .frameTooLarge)
    }

    @Test("one byte over the maximum is refused, exactly the maximum passes")
    func maximumBoundary() throws {
        let payload = 4096 - FrameHeader.size
        let atLimit = Frame(header: FrameHeader(kind: .ping, correlationID: 0), attachment: ByteBuffer(string: "x", repeating: payload))
        let overLimit = Frame(header: FrameHeader(kind: .ping, correlationID: 0), attachment: ByteBuffer(string: "x", repeating: payload + 1))
        let ok = try EmbeddedConnection(maxFrameSize: 4096)
        try ok.completeHandshake()
        ok.feed(atLimit)
        #expect(ok.channel.isActive)
        let refused = try EmbeddedConnection(maxFrameSize: 4096)
        try refused.completeHandshake()
        refused.feed(overLimit)
        #expect(!refused.channel.isActive)
    }

    @Test("mutated valid streams decode consistently or close, in any chunking", arguments: 0..<40)
    func mutatedFrames(seed: Int) throws {
        var rng = SplitMix64(state: UInt64(seed) &+ 1000)
        let connection = try EmbeddedConnection(maxFrameSize: 1 << 16)
        try connection.completeHandshake()
        var stream = ByteBuffer()
        for name in ["response", "stream-item-end", "error", "request-streaming"] { stream.writeImmutableBuffer(try Fixtures.bytes(name)) }
        let original = stream
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let at = Int.random(in: 0..<stream.readableBytes, using: &rng)
            stream.setInteger(UInt8.random(in: 0...255, using: &rng), at: at)
        }
        var delivered = 0
        while delivered < stream.readableBytes, connection.channel.isActive {
            let n = min(Int.random(in: 1...40, using: &rng), stream.readableBytes - delivered)
            connection.feed(stream.getSlice(at: delivered, length: n)!)
            delivered += n
        }
        // Whatever decoded must re-encode to exactly the bytes it came from.
        var reencoded = ByteBuffer()
        for frame in try connection.inboundFrames() { reencoded.writeImmutableBuffer(frame.encoded()) }
        #expect(reencoded == stream.getSlice(at: 0, length: reencoded.readableBytes))
        if !connection.channel.isActive {
            #expect(connection.recorder.closeReasons.count == 1)
        } else if stream == original {
            #expect(reencoded == original)
        }
    }

    @Test("a connection closed inside a frame is reported as truncated")
    func eofInsideFrame() throws {
        let connection = try EmbeddedConnection()
        connection.feed(try Fixtures.bytes("response").getSlice(at: 0, length: 20)!)
        connection.channel.pipeline.fireChannelInactive()
        #expect(connection.recorder.closeReasons.first?.contains("truncatedFrame") == true)
    }
}
