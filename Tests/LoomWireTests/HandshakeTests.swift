import NIOCore
import NIOEmbedded
import Testing
@testable import LoomWire

@Suite("Wire HELLO handshake and keepalive")
struct HandshakeTests {
    func hello(_ versions: [UInt32], name: String) -> Loom_Wire_Hello {
        var hello = Loom_Wire_Hello()
        hello.versions = versions
        hello.nodeName = name
        return hello
    }

    func helloFrame(_ hello: Loom_Wire_Hello, kind: FrameKind) throws -> Frame {
        Frame(header: FrameHeader(kind: kind, correlationID: 0, method: 0), message: ByteBuffer(bytes: try hello.serializedBytes() as [UInt8]))
    }

    @Test("client and server machines agree on the highest common version")
    func exchange() throws {
        var client = HandshakeStateMachine(role: .client, local: hello([1, 2, 3], name: "c"))
        var server = HandshakeStateMachine(role: .server, local: hello([1, 2], name: "s"))
        #expect({ if case .none = server.channelActive() { true } else { false } }())
        guard case .write(let request) = client.channelActive() else { Issue.record("client must speak first"); return }
        guard case .completed(let seenByServer, let reply?) = server.frameReceived(request) else { Issue.record("server must answer"); return }
        #expect(seenByServer.hello.nodeName == "c" && seenByServer.version == 2)
        guard case .completed(let seenByClient, nil) = client.frameReceived(reply) else { Issue.record("client must complete"); return }
        #expect(seenByClient.hello.nodeName == "s" && seenByClient.version == 2)
        let later = Frame(header: FrameHeader(kind: .response, correlationID: 4, method: 1))
        guard case .forward(let forwarded) = client.frameReceived(later) else { Issue.record("must forward"); return }
        #expect(forwarded == later)
    }

    @Test("no common version fails the handshake with an error for the peer")
    func noCommonVersion() throws {
        var server = HandshakeStateMachine(role: .server, local: hello([2], name: "s"))
        _ = server.channelActive()
        guard case .fail(let error, let reply?) = server.frameReceived(try helloFrame(hello([1], name: "c"), kind: .request)) else {
            Issue.record("must fail"); return
        }
        #expect(error.code == .handshakeFailed)
        #expect(WireError(errorFrame: reply).code == .handshakeFailed)
        var client = HandshakeStateMachine(role: .client, local: hello([1], name: "c"))
        _ = client.channelActive()
        guard case .fail(let clientError, nil) = client.frameReceived(reply) else { Issue.record("client must fail"); return }
        #expect(clientError.code == .handshakeFailed)
    }

    @Test("a call before HELLO is a protocol violation")
    func callBeforeHello() {
        var server = HandshakeStateMachine(role: .server, local: hello([1], name: "s"))
        _ = server.channelActive()
        guard case .fail(let error, _) = server.frameReceived(Frame(header: FrameHeader(kind: .request, correlationID: 1, method: 7))) else {
            Issue.record("must fail"); return
        }
        #expect(error.code == .protocolViolation)
        #expect(!server.isEstablished)
    }

    @Test("a HELLO whose message does not parse is refused")
    func garbageHello() {
        var server = HandshakeStateMachine(role: .server, local: hello([1], name: "s"))
        _ = server.channelActive()
        let frame = Frame(header: FrameHeader(kind: .request, correlationID: 0, method: 0), message: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]))
        guard case .fail(let error, _) = server.frameReceived(frame) else { Issue.record("must fail"); return }
        #expect(error.code == .handshakeFailed)
    }

    @Test("a ping is answered with a pong and not passed to calls")
    func pingPong() throws {
        let connection = try EmbeddedConnection()
        try connection.completeHandshake()
        connection.feed(.ping())
        #expect(try connection.outboundFrames() == [.ping(pong: true)])
        #expect(try connection.inboundFrames().isEmpty)
    }

    @Test("a silent peer is pinged, then dropped after the miss limit")
    func keepaliveTimeout() throws {
        let connection = try EmbeddedConnection(keepalive: .seconds(1), missLimit: 2)
        try connection.completeHandshake()
        let loop = connection.channel.embeddedEventLoop
        loop.advanceTime(by: .seconds(1))  // the HELLO counts as a sign of life
        #expect(try connection.outboundFrames().isEmpty)
        loop.advanceTime(by: .seconds(1))
        #expect(try connection.outboundFrames() == [.ping()])
        connection.feed(.ping(pong: true))  // an answer resets the count
        loop.advanceTime(by: .seconds(1))
        #expect(try connection.outboundFrames().isEmpty)
        for _ in 0..<2 { loop.advanceTime(by: .seconds(1)) }
        #expect(try connection.outboundFrames() == [.ping(), .ping()])
        #expect(connection.channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(!connection.channel.isActive)
        #expect(connection.recorder.closeReasons.first?.contains("keepaliveTimeout") == true)
    }
}

@Suite("Wire handshake timeout")
struct HandshakeTimeoutTests {
    @Test("a peer that never sends HELLO is dropped after the miss limit")
    func silentBeforeHello() throws {
        let connection = try EmbeddedConnection(keepalive: .seconds(1), missLimit: 2)
        for _ in 0..<2 { connection.channel.embeddedEventLoop.advanceTime(by: .seconds(1)) }
        #expect(connection.channel.isActive)
        connection.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!connection.channel.isActive)
        #expect(connection.recorder.closeReasons.first?.contains("no HELLO") == true)
    }
}
