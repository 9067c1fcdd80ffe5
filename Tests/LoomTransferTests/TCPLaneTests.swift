import Glibc
import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

/// The tcp backend's data lanes at the byte level: their framing, and what
/// a target does with sockets that do not follow it.
@Suite("Transfer tcp data lanes")
struct TCPLaneTests {
    @Test("lane frames have fixed little-endian layouts and refuse what is not theirs")
    func frames() throws {
        #expect(LaneFrames.greeting(token: 0x0102_0304_0506_0708) == [0x4C, 0x4E, 0x48, 0x31, 1, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
        let greeting = LaneFrames.greeting(token: 99)
        #expect(try greeting.withUnsafeBytes { try LaneFrames.token(ofGreeting: $0) } == 99)
        var wrongVersion = greeting
        wrongVersion[4] = 2
        #expect(throws: TransferError.self) { try wrongVersion.withUnsafeBytes { try LaneFrames.token(ofGreeting: $0) } }

        var request = Loom_Transfer_WriteRequest()
        request.opID = 7
        let part = try LaneFrames.part(request, payloadLength: 300)
        #expect(Array(part[0..<4]) == [0x4C, 0x4E, 0x50, 0x31])
        let header = try part.withUnsafeBytes { try LaneFrames.partHeader($0) }
        #expect(header == LaneFrames.PartHeader(messageLength: part.count - 16, payloadLength: 300))
        #expect(try Loom_Transfer_WriteRequest(serializedBytes: Array(part[16...])) == request)
        var huge = part
        huge[15] = 0x10  // payload length 2^60
        #expect(throws: TransferError.self) { try huge.withUnsafeBytes { try LaneFrames.partHeader($0) } }

        let reply = LaneFrames.Reply(opID: 5, code: TransferError.Code.outOfRegion.rawValue, duplicate: true, text: "past the end")
        let encoded = LaneFrames.encode(reply)
        let (decoded, textLength) = try encoded.withUnsafeBytes { try LaneFrames.replyHeader($0) }
        #expect(textLength == 12)
        #expect(LaneFrames.Reply(opID: decoded.opID, code: decoded.code, duplicate: decoded.duplicate, text: String(decoding: encoded[24...], as: UTF8.self)) == reply)
    }

    /// A target serving the lanes call, and one call's port and token.
    struct Served {
        let target = TransferTarget(regions: RegionTable(owner: "lanes", epoch: 1))
        let region: RegisteredRegion

        init() { region = target.regions.register(length: 4096) }

        func withLanes(_ lanes: Int = 2, _ body: (Loom_Transfer_TcpLanesOpened) async throws -> Void) async throws {
            var services = RPCServices()
            TransferService.register(into: &services, target: target)
            var configuration = RPCConfiguration(nodeName: "lanes")
            configuration.keepaliveInterval = nil
            let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                defer { group.cancelAll() }
                try await RPCConnection.withConnection(to: server.localAddress, configuration: RPCConfiguration(nodeName: "raw")) { connection in
                    var request = Loom_Transfer_TcpLanesRequest()
                    request.host = "127.0.0.1"
                    request.lanes = UInt32(lanes)
                    try await connection.serverStreaming(method: TCPTransport.lanesMethod, try RPCMessage(request)) { stream in
                        var items = stream.makeAsyncIterator()
                        try await body(try items.next()!.decode())
                    }
                }
            }
        }

        func write(at offset: Int, _ bytes: [UInt8], immediate: UInt32, opID: UInt64) throws -> [UInt8] {
            let request = Loom_Transfer_WriteRequest.single(into: region.descriptor, at: offset, count: bytes.count, immediate: immediate, opID: opID, sender: "raw")
            return try LaneFrames.part(request, payloadLength: bytes.count) + bytes
        }
    }

    /// Reads one reply; nil when the target closed the lane instead.
    func reply(on lane: LaneSocket) -> LaneFrames.Reply? {
        guard let head = try? lane.receive(count: LaneFrames.replyBytes),
              let (header, textLength) = try? head.withUnsafeBytes({ try LaneFrames.replyHeader($0) }),
              let text = try? lane.receive(count: textLength) else { return nil }
        var reply = header
        reply.text = String(decoding: text, as: UTF8.self)
        return reply
    }

    @Test("a refused part is answered with why, its payload skipped, and the lane goes on serving")
    func refusalKeepsLane() async throws {
        let served = Served()
        try await served.withLanes(1) { opened in
            let lane = try LaneSocket.connect(host: "127.0.0.1", port: Int(opened.port))
            defer { lane.close() }
            try lane.send(LaneFrames.greeting(token: opened.token))
            try lane.send(try served.write(at: 4090, [UInt8](repeating: 0xEE, count: 100), immediate: 3, opID: 1))
            let refused = try #require(reply(on: lane))
            #expect(refused.opID == 1 && refused.code == TransferError.Code.outOfRegion.rawValue)
            #expect(refused.text.contains("4090"), "\(refused.text)")
            try lane.send(try served.write(at: 8, [1, 2, 3], immediate: 3, opID: 2))
            #expect(reply(on: lane) == LaneFrames.Reply(opID: 2))
            try lane.send(try served.write(at: 8, [9, 9, 9], immediate: 3, opID: 2))
            #expect(reply(on: lane) == LaneFrames.Reply(opID: 2, duplicate: true))
        }
        #expect(try served.region.read(offset: 7, count: 5) == [0, 1, 2, 3, 0])
        #expect(served.target.counters.count(3) == 1)
        #expect(try served.region.read(offset: 4000, count: 96) == [UInt8](repeating: 0, count: 96))
    }

    @Test("a socket with the wrong token or broken framing is closed; the writer's own lanes are still served")
    func badSockets() async throws {
        let served = Served()
        try await served.withLanes(1) { opened in
            let stranger = try LaneSocket.connect(host: "127.0.0.1", port: Int(opened.port))
            defer { stranger.close() }
            try stranger.send(LaneFrames.greeting(token: opened.token &+ 1))
            #expect(reply(on: stranger) == nil)

            let lane = try LaneSocket.connect(host: "127.0.0.1", port: Int(opened.port))
            defer { lane.close() }
            try lane.send(LaneFrames.greeting(token: opened.token))
            try lane.send(try served.write(at: 0, [5], immediate: 4, opID: 1))
            #expect(reply(on: lane) == LaneFrames.Reply(opID: 1))
            try lane.send([UInt8](repeating: 0x41, count: 16))
            #expect(reply(on: lane) == nil)
        }
        #expect(served.target.counters.count(4) == 1)
    }

    @Test("a part whose reply never comes fails as unacknowledged, and the transport is not stuck")
    func ackTimeout() async throws {
        let listener = try LaneListener(host: "127.0.0.1")
        defer { listener.socket.close() }
        let writer = LaneWriter(socket: try LaneSocket.connect(host: "127.0.0.1", port: listener.port), ackTimeout: .milliseconds(300))
        // Accepted and read by nobody: the kernel takes the bytes, no reply comes.
        let silent = try #require(listener.accept())
        defer { silent.close() }
        var request = Loom_Transfer_WriteRequest()
        request.opID = 11
        await expectTransferError([.ackLost]) {
            _ = try await writer.send(request, payload: [ByteBuffer(bytes: [1, 2, 3])])
        }
        await writer.close()
        await expectTransferError([.peerUnavailable]) {
            _ = try await writer.send(request, payload: [])
        }
    }

    @Test("the tcp backend over a Unix socket address says to use shm")
    func unixAddress() async throws {
        await expectTransferError([.invalidRequest]) {
            try await TCPTransport.withTransport(to: .unix(path: "/tmp/none.sock"), configuration: RPCConfiguration(nodeName: "w")) { _ in }
        }
    }

    @Test("the target listens where the lanes call arrived, not at the name the writer dialled")
    func listenerBindsArrivalAddress() async throws {
        let peer = try await Backend.tcp.startPeer()
        var configuration = RPCConfiguration(nodeName: "writer")
        configuration.keepaliveInterval = nil
        // As a writer behind a NAT or using an alias would send it: a name
        // the target cannot bind.
        var request = Loom_Transfer_TcpLanesRequest()
        request.host = "loom-not-this-host.invalid"
        request.lanes = 1
        let opened = try await RPCConnection.withConnection(to: peer.server.localAddress, configuration: configuration) { connection in
            try await connection.serverStreaming(method: TCPTransport.lanesMethod, try RPCMessage(request)) { stream in
                var items = stream.makeAsyncIterator()
                let item = try #require(try await items.next())
                let opened: Loom_Transfer_TcpLanesOpened = try item.decode()
                let socket = try LaneSocket.connect(host: "127.0.0.1", port: Int(opened.port))
                socket.close()
                return opened
            }
        }
        #expect(opened.port > 0)
        await peer.kill()
    }
}
