import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import LoomWire

@Suite("Wire RPC limits: frame size, bad peers, backpressure, keepalive")
struct RPCLimitsTests {
    @Test("a request over the server's maximum frame size is refused before sending")
    func requestTooLarge() async throws {
        try await withServer(.tcp, configuration: configuration("server", maxFrameSize: 64 << 10)) { server in
            try await withClient(server) { connection in
                let big = ByteBuffer(repeating: 1, count: 64 << 10)
                await expectWireError(.frameTooLarge) { try await connection.unary(Echo.unary, Echo.request("x"), attachment: big) }
                let (response, _) = try await connection.unary(Echo.unary, Echo.request("small"))
                #expect(response.text == "small")
            }
        }
    }

    @Test("a peer sending garbage or oversized frames is closed; other connections carry on",
          arguments: ["garbage", "oversized"])
    func badPeerIsolated(kind: String) async throws {
        let recorder = LogRecorder()
        try await withServer(.tcp, configuration: configuration("server", recorder: recorder, maxFrameSize: 64 << 10)) { server in
            try await withClient(server) { good in
                var bytes = ByteBuffer()
                if kind == "garbage" {
                    bytes.writeString("GET /v1/models HTTP/1.1\r\nHost: loom\r\nAccept: */*\r\n\r\n")
                } else {
                    FrameHeader(kind: .request, correlationID: 0, method: 0, messageLength: 1 << 30).write(to: &bytes)
                }
                let reply = try await RawPeer.sendAndReadUntilClosed(bytes, to: server.localAddress)
                // The server says why before it closes.
                let frames = try reply.frames()
                #expect(frames.map(\.kind) == [.error])
                #expect(WireError(errorFrame: frames[0]).code == (kind == "garbage" ? .badMagic : .frameTooLarge))
                #expect(recorder.closeReasons.count == 1)
                let (response, _) = try await good.unary(Echo.unary, Echo.request("unaffected"))
                #expect(response.text == "unaffected")
            }
        }
    }

    @Test("a slow stream consumer stops the server producing")
    func backpressure() async throws {
        let produced = NIOLockedValueBox(0)
        let total = 2000
        let services = Echo.services { services in
            services.serverStreaming(13) { _, writer in
                let chunk = ByteBuffer(repeating: 7, count: 256 << 10)
                for _ in 0..<total {
                    try await writer.send(RPCMessage(attachment: chunk))
                    produced.withLockedValue { $0 += 1 }
                }
            }
        }
        try await withServer(.tcp, services: services) { server in
            try await withClient(server) { connection in
                let received = try await connection.serverStreaming(method: 13, RPCMessage()) { stream in
                    var iterator = stream.makeAsyncIterator()
                    _ = try await iterator.next()
                    // Wait until the server stops producing (bounded polls);
                    // without backpressure it would run to the end: 500 MB
                    // is far more than socket and stream buffers hold.
                    var last = -1
                    for _ in 0..<50 where produced.withLockedValue({ $0 }) != last {
                        last = produced.withLockedValue { $0 }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                    #expect(produced.withLockedValue { $0 } < total)
                    var received = 1
                    while try await iterator.next() != nil { received += 1 }
                    return received
                }
                #expect(received == total)
            }
        }
    }

    @Test("keepalive pings keep an idle connection open", arguments: Transport.allCases)
    func keepaliveKeepsIdleConnection(transport: Transport) async throws {
        var serverConfiguration = configuration("server")
        serverConfiguration.keepaliveInterval = .milliseconds(100)
        serverConfiguration.keepaliveMissLimit = 4
        var clientConfiguration = configuration("client")
        clientConfiguration.keepaliveInterval = .milliseconds(100)
        clientConfiguration.keepaliveMissLimit = 4
        try await withServer(transport, configuration: serverConfiguration) { [clientConfiguration] server in
            try await withClient(server, configuration: clientConfiguration) { connection in
                // Idle for twice the time a silent peer is given: only the
                // ping/pong exchange keeps the connection open that long.
                try await Task.sleep(for: .milliseconds(1000))
                let (response, _) = try await connection.unary(Echo.unary, Echo.request("alive"))
                #expect(response.text == "alive")
            }
        }
    }

    @Test("a call on a connection the server dropped fails with an error, not a hang")
    func serverGone() async throws {
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: Echo.services(), configuration: configuration("server"))
        let running = Task { try await server.run() }
        try await withClient(server) { connection in
            _ = try await connection.unary(Echo.unary, Echo.request("before"))
            running.cancel()
            try? await running.value
            await expectWireError(.connectionClosed) {
                try await connection.unary(Echo.unary, Echo.request("after"))
            }
        }
    }

    /// Calls are answered from the event loop as soon as the HELLO is done,
    /// before the accept loop takes the connection; a server stopped before
    /// its loop ever ran must still close what it accepted.
    @Test("stopping a server closes connections its accept loop never took")
    func stoppedBeforeAccepting() async throws {
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: Echo.services(), configuration: configuration("server"))
        try await withClient(server) { connection in
            _ = try await connection.unary(Echo.unary, Echo.request("answered without run()"))
            let running = Task { try await server.run() }
            running.cancel()
            try? await running.value
            await expectWireError(.connectionClosed) {
                try await connection.unary(Echo.unary, Echo.request("after"))
            }
        }
    }
}

/// A client that speaks raw bytes, for sending what a real client never would.
enum RawPeer {
    static func sendAndReadUntilClosed(_ bytes: ByteBuffer, to address: RPCAddress) async throws -> ByteBuffer {
        guard case .tcp(let host, let port) = address else { fatalError("tcp only") }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(bytes)
            var received = ByteBuffer()
            do {
                for try await var chunk in inbound { received.writeBuffer(&chunk) }
            } catch {}
            return received
        }
    }
}

extension ByteBuffer {
    func frames() throws -> [Frame] {
        var buffer = self
        var decoder = FrameDecoder(maxFrameSize: 1 << 20)
        var frames: [Frame] = []
        while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
        return frames
    }
}
