import NIOCore
import NIOEmbedded
import Testing
@testable import LoomWire

/// `FrameReader` in front of a handler that records what reaches it.
@Suite("Wire frame reader")
struct FrameReaderTests {
    /// Records frames and errors; closes the channel on the first frame
    /// when asked, as `ConnectionHandler` does on a protocol violation.
    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = Frame
        var frames: [Frame] = []
        var errors: [Error] = []
        let closeOnFirstFrame: Bool

        init(closeOnFirstFrame: Bool = false) {
            self.closeOnFirstFrame = closeOnFirstFrame
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            frames.append(unwrapInboundIn(data))
            if closeOnFirstFrame, frames.count == 1 { context.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            errors.append(error)
        }
    }

    static func frame(_ id: UInt64) -> Frame {
        Frame(header: FrameHeader(kind: .response, correlationID: id, method: 3), message: ByteBuffer(string: "m\(id)"))
    }

    static func channel(_ recorder: Recorder, maxFrameSize: Int = 4096) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([FrameReader(FrameDecoder(maxFrameSize: maxFrameSize)), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    @Test("frames split across reads and packed into one read all arrive, in order")
    func splitAndPacked() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        var bytes = ByteBuffer()
        for id in 1...5 { bytes.writeImmutableBuffer(Self.frame(UInt64(id)).encoded()) }
        while bytes.readableBytes > 0 {
            try channel.writeInbound(bytes.readSlice(length: min(7, bytes.readableBytes))!)
        }
        #expect(recorder.frames == (1...5).map { Self.frame(UInt64($0)) })
        #expect(recorder.errors.isEmpty)
    }

    @Test("after a framing error nothing more is decoded, in that read or later ones")
    func stopsAfterError() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder, maxFrameSize: 256)
        var bytes = Self.frame(1).encoded()
        FrameHeader(kind: .request, correlationID: 2, method: 5, messageLength: 10, attachmentLength: 1 << 20).write(to: &bytes)
        bytes.writeImmutableBuffer(Self.frame(3).encoded())
        try channel.writeInbound(bytes)
        try channel.writeInbound(Self.frame(4).encoded())
        #expect(recorder.frames == [Self.frame(1)])
        #expect(recorder.errors.count == 1)
        #expect((recorder.errors.first as? WireError)?.code == .frameTooLarge)
    }

    @Test("a handler closing the connection inside a read gets no more of that read's frames")
    func closedInsideRead() throws {
        let recorder = Recorder(closeOnFirstFrame: true)
        let channel = try Self.channel(recorder)
        var bytes = Self.frame(1).encoded()
        bytes.writeImmutableBuffer(Self.frame(2).encoded())
        // A cut-off third frame: reported as truncated only when nobody closed
        // the connection on purpose first.
        bytes.writeImmutableBuffer(Self.frame(3).encoded().getSlice(at: 0, length: FrameHeader.size + 1)!)
        try channel.writeInbound(bytes)
        #expect(!channel.isActive)
        #expect(recorder.frames == [Self.frame(1)])
        #expect(recorder.errors.isEmpty)
    }

    @Test("the peer closing inside a frame is reported as a truncated frame")
    func truncatedAtEOF() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        var bytes = Self.frame(1).encoded()
        bytes.writeImmutableBuffer(Self.frame(2).encoded().getSlice(at: 0, length: FrameHeader.size + 1)!)
        try channel.writeInbound(bytes)
        _ = try? channel.finish()
        #expect(recorder.frames == [Self.frame(1)])
        #expect((recorder.errors.first as? WireError)?.code == .truncatedFrame)
    }
}
