import NIOCore
import NIOEmbedded
@testable import LoomWire

/// A server-side connection pipeline on an EmbeddedChannel: decoder,
/// optional keepalive and the connection handler, as on a real socket.
struct EmbeddedConnection {
    let channel: EmbeddedChannel
    let handshake: EventLoopFuture<PeerInfo>
    let recorder = LogRecorder()

    init(role: HandshakeStateMachine.Role = .server, maxFrameSize: Int = 4096, keepalive: TimeAmount? = nil, missLimit: Int = 2) throws {
        channel = EmbeddedChannel()
        let promise = channel.eventLoop.makePromise(of: PeerInfo.self)
        handshake = promise.futureResult
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FrameReader(FrameDecoder(maxFrameSize: maxFrameSize)))
        var configuration = RPCConfiguration(nodeName: "embedded")
        configuration.logger = recorder.logger()
        try sync.addHandler(ConnectionHandler(
            handshake: HandshakeStateMachine(role: role, local: configuration.hello),
            handshakePromise: promise, keepaliveInterval: keepalive, keepaliveMissLimit: missLimit, logger: recorder.logger()))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
    }

    /// Feeds bytes; a framing error is reported by closing, so it is swallowed here.
    func feed(_ bytes: ByteBuffer) {
        guard channel.isActive else { return }
        do { try channel.writeInbound(bytes) } catch {}
    }

    func feed(_ frame: Frame) { feed(frame.encoded()) }

    func inboundFrames() throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try channel.readInbound(as: Frame.self) { frames.append(frame) }
        return frames
    }

    func outboundFrames() throws -> [Frame] {
        var frames: [Frame] = []
        while let frame = try channel.readOutbound(as: Frame.self) { frames.append(frame) }
        return frames
    }

    /// Plays the client's side of HELLO.
    func completeHandshake() throws {
        var hello = Loom_Wire_Hello()
        hello.versions = [1]
        hello.nodeName = "peer"
        feed(Frame(header: FrameHeader(kind: .request, correlationID: 0, method: 0),
                   message: ByteBuffer(bytes: try hello.serializedBytes() as [UInt8])))
        _ = try outboundFrames()
    }
}
