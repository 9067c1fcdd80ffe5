import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
@testable import LoomWire

/// A sink that keeps what it receives in memory, and refuses requests whose
/// message says "refuse".
struct RecordingSink: AttachmentSink {
    final class Receiver: AttachmentReceiver {
        var bytes: [UInt8] = []
        var pieces = 0
        func receive(_ piece: UnsafeRawBufferPointer) {
            bytes += piece
            pieces += 1
        }
        func finish() -> any Sendable { Received(bytes: bytes, pieces: pieces) }
    }

    struct Received: Sendable, Equatable {
        var bytes: [UInt8]
        var pieces: Int
    }

    func receiver(for header: FrameHeader, message: ByteBuffer) throws(WireError) -> any AttachmentReceiver {
        if message.getString(at: message.readerIndex, length: message.readableBytes) == "refuse" {
            throw WireError(.handlerFailed, "refused by the sink")
        }
        return Receiver()
    }
}

@Suite("Attachments streamed into a sink")
struct AttachmentSinkTests {
    static let method: UInt32 = 9

    /// A decoder with `RecordingSink` on `method`, its gate open or shut.
    func decoder(open: Bool) -> EmbeddedChannel {
        let gate = HandshakeGate()
        gate.isOpen = open
        return EmbeddedChannel(handler: FrameReader(
            FrameDecoder(maxFrameSize: 1 << 20, sinks: [Self.method: RecordingSink()], gate: gate)))
    }

    func request(_ message: String, attachment: [UInt8], id: UInt64 = 1, method: UInt32 = method) -> ByteBuffer {
        Frame(header: FrameHeader(kind: .request, correlationID: id, method: method),
              message: ByteBuffer(string: message), attachment: ByteBuffer(bytes: attachment)).encoded()
    }

    /// Feeds `bytes` in pieces of `size`, returning every frame decoded.
    func feed(_ channel: EmbeddedChannel, _ bytes: ByteBuffer, pieces size: Int) throws -> [Frame] {
        var bytes = bytes
        var frames: [Frame] = []
        while bytes.readableBytes > 0 {
            try channel.writeInbound(bytes.readSlice(length: min(size, bytes.readableBytes))!)
            while let frame = try channel.readInbound(as: Frame.self) { frames.append(frame) }
        }
        return frames
    }

    @Test("an attachment arriving in pieces reaches the receiver in order, and the frame carries the landing")
    func landsInOrder() throws {
        let channel = decoder(open: true)
        let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var stream = request("put", attachment: payload)
        stream.writeImmutableBuffer(Frame(header: FrameHeader(kind: .request, correlationID: 2, method: 3), message: ByteBuffer(string: "next")).encoded())
        let frames = try feed(channel, stream, pieces: 777)
        #expect(frames.count == 2)
        #expect(frames[0].attachment.readableBytes == 0)
        #expect(frames[0].message == ByteBuffer(string: "put"))
        let received = try #require(try frames[0].landing?.outcome.get() as? RecordingSink.Received)
        #expect(received.bytes == payload)
        #expect(received.pieces > 1, "the attachment should have been handed over read by read")
        #expect(frames[1].message == ByteBuffer(string: "next") && frames[1].landing == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("a refused attachment is read past, and the next frame decodes")
    func refusalKeepsTheStreamInStep() throws {
        let channel = decoder(open: true)
        var stream = request("refuse", attachment: [UInt8](repeating: 1, count: 5000))
        stream.writeImmutableBuffer(request("put", attachment: [4, 5, 6], id: 2))
        let frames = try feed(channel, stream, pieces: 1000)
        #expect(frames.count == 2)
        #expect(throws: WireError.self) { try frames[0].landing?.outcome.get() }
        let received = try #require(try frames[1].landing?.outcome.get() as? RecordingSink.Received)
        #expect(received.bytes == [4, 5, 6])
    }

    @Test("before the HELLO exchange, and for other methods, attachments are gathered as usual")
    func onlyAfterHandshakeAndForItsMethod() throws {
        let shut = decoder(open: false)
        let early = try feed(shut, request("put", attachment: [1, 2, 3]), pieces: 4)
        #expect(early.count == 1 && early[0].landing == nil && early[0].attachment == ByteBuffer(bytes: [1, 2, 3]))
        let open = decoder(open: true)
        let other = try feed(open, request("put", attachment: [1, 2, 3], method: 10), pieces: 4)
        #expect(other.count == 1 && other[0].landing == nil && other[0].attachment == ByteBuffer(bytes: [1, 2, 3]))
    }

    @Test("a connection closed inside a streamed attachment is a truncated frame")
    func truncatedInsideAttachment() throws {
        let gate = HandshakeGate()
        gate.isOpen = true
        var decoder = FrameDecoder(maxFrameSize: 1 << 20, sinks: [Self.method: RecordingSink()], gate: gate)
        var stream = request("put", attachment: [UInt8](repeating: 9, count: 4000))
        stream.moveWriterIndex(to: stream.writerIndex - 100)
        #expect(try decoder.decode(buffer: &stream) == nil)
        #expect(stream.readableBytes == 0, "the received part went to the sink")
        let error = #expect(throws: WireError.self) { try decoder.decodeLast(buffer: &stream, seenEOF: true) }
        #expect(error?.code == .truncatedFrame)
        #expect(error?.message.contains("100 of its 4000") == true)
    }

    @Test("over a real connection, the handler gets the sink's result, and a refusal reaches the caller", arguments: Transport.allCases)
    func endToEnd(transport: Transport) async throws {
        var services = Echo.services()
        services.unary(Self.method, attachments: RecordingSink()) { request in
            let received = try #require(request.landed as? RecordingSink.Received)
            #expect(request.message.attachment.readableBytes == 0)
            return RPCMessage(message: ByteBuffer(string: "\(received.bytes.count) \(received.bytes.reduce(0) { $0 &+ Int($1) })"))
        }
        let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await withServer(transport, services: services) { server in
            try await withClient(server) { connection in
                let reply = try await connection.unary(method: Self.method, RPCMessage(message: ByteBuffer(string: "put"), attachment: ByteBuffer(bytes: payload)))
                #expect(reply.message == ByteBuffer(string: "\(payload.count) \(payload.reduce(0) { $0 &+ Int($1) })"))
                await expectWireError(.handlerFailed) {
                    try await connection.unary(method: Self.method, RPCMessage(message: ByteBuffer(string: "refuse"), attachment: ByteBuffer(bytes: payload)))
                }
                let echoed = try await connection.unary(Echo.unary, Echo.request("still here"))
                #expect(echoed.0.text == "still here")
            }
        }
    }
}
