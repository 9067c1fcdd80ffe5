import Foundation
import Glibc
@testable import LoomTensorParallel
import LoomTransfer
import Testing

/// The tcp path between ranks on different hosts: its frames, the mesh
/// that connects the ranks, and what a peer that breaks the protocol or
/// goes away does to the rank reading it.
@Suite struct SocketLinkTests {
    let writable = 4096 ..< 65536

    func decode(_ frame: LinkFrame) throws(TransferError) -> LinkFrame {
        var bytes = [UInt8](repeating: 0, count: LinkFrame.bytes)
        bytes.withUnsafeMutableBytes { frame.encode(into: $0) }
        return try decode(bytes)
    }

    func decode(_ bytes: [UInt8]) throws(TransferError) -> LinkFrame {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        return try LinkFrame(decoding: UnsafeRawBufferPointer(copy), writable: writable)
    }

    @Test func framesComeBackAsSent() throws {
        for frame in [LinkFrame(offset: 4096, length: 2304, posts: true, count: 7), LinkFrame(offset: 60000, length: 5536, posts: false, count: 0),
                      LinkFrame(offset: 0, length: 0, posts: true, count: UInt32.max)] {
            #expect(try decode(frame) == frame)
        }
    }

    @Test func aFrameOutsideTheRegionOrOverTheArrivalWordsIsRefused() {
        for (frame, why) in [(LinkFrame(offset: 64, length: 4, posts: true, count: 1), "over the arrival words"),
                             (LinkFrame(offset: 65000, length: 1000, posts: false, count: 0), "past the end"),
                             (LinkFrame(offset: Int(UInt32.max) * 4, length: 8, posts: false, count: 0), "far past the end")] {
            #expect(throws: TransferError.self, "\(why)") { try decode(frame) }
            do { _ = try decode(frame) } catch {
                #expect(error.message.contains("outside this rank's region"), "\(error)")
            }
        }
    }

    @Test func aFrameWithoutTheMagicOrWithUnknownFlagsIsRefused() {
        var bytes = [UInt8](repeating: 0, count: LinkFrame.bytes)
        bytes.withUnsafeMutableBytes { LinkFrame(offset: 4096, length: 4, posts: true, count: 1).encode(into: $0) }
        var garbage = bytes
        garbage[0] = 0x47
        var flagged = bytes
        flagged[4] = 0x82
        for (bytes, what) in [(garbage, "magic"), (flagged, "unknown flags")] {
            do {
                _ = try decode(bytes)
                Issue.record("\(what) was accepted")
            } catch {
                #expect(error.message.contains(what), "\(error)")
            }
        }
    }

    static func member(_ rank: Int, host: String, port: Int = 0) -> GroupMember {
        GroupMember(rank: rank, region: RegionDescriptor(owner: "t", regionID: 1, epoch: 1, length: 1), pid: getpid(), host: "h\(rank)",
                    hostID: "host-\(rank)", dataHost: host, dataPort: port)
    }

    /// A connection that does not open with this group's token (a port
    /// scanner, a rank of an earlier group) is dropped, and the real rank
    /// still gets through.
    @Test func aStrayConnectionIsDroppedAndTheRankStillConnects() async throws {
        let listener = try GroupMesh.listen()
        let members = [Self.member(0, host: "", port: listener.port), Self.member(1, host: "127.0.0.1")]
        let accepting = Task.detached { try GroupMesh.connect(members[0], members: members, listener: listener, leaderHost: "127.0.0.1", token: 42, within: .seconds(10)) }
        let stray = try LaneSocket.connect(host: "127.0.0.1", port: listener.port)
        try stray.send([UInt8](repeating: 0x41, count: GroupMesh.helloBytes))
        let wrongToken = try LaneSocket.connect(host: "127.0.0.1", port: listener.port)
        try wrongToken.send(GroupMesh.hello(rank: 1, token: 41))
        let dialled = try GroupMesh.connect(members[1], members: members, listener: try GroupMesh.listen(), leaderHost: "127.0.0.1", token: 42, within: .seconds(10))
        let accepted = try await accepting.value
        #expect(Set(accepted.keys) == [1] && Set(dialled.keys) == [0])
        // The dropped ones see their connection closed.
        var byte: UInt8 = 0
        #expect(recv(stray.fd, &byte, 1, 0) <= 0 && recv(wrongToken.fd, &byte, 1, 0) <= 0)
        for socket in [stray, wrongToken] + Array(accepted.values) + Array(dialled.values) { socket.close() }
    }

    @Test func aRankWhosePeersNeverConnectGivesUpNamingThem() async throws {
        let listener = try GroupMesh.listen()
        let members = [Self.member(0, host: "", port: listener.port), Self.member(1, host: "127.0.0.1"), Self.member(2, host: "127.0.0.1")]
        do {
            _ = try GroupMesh.connect(members[0], members: members, listener: listener, leaderHost: "127.0.0.1", token: 1, within: .milliseconds(300))
            Issue.record("the mesh formed without its peers")
        } catch let error as TensorParallelError {
            #expect(error.code == .joinTimeout && error.message.contains("ranks 1, 2"), "\(error)")
        }
    }

    /// A link reading a real loopback connection, and the socket that
    /// writes into it as rank 1 would.
    func connectedLink(epoch: UInt64) throws -> (SocketLink, LaneSocket, RegisteredRegion, GroupRegionLayout) {
        let layout = GroupRegionLayout(size: 2, embedding: 8, vocabulary: 16, holdsLogits: true)
        let region = try SharedMemoryRegion.register(in: RegionTable(owner: "link-test.pid\(getpid())", epoch: epoch), length: layout.length)
        let listener = try LaneListener(host: "127.0.0.1")
        defer { listener.socket.close() }
        let writer = try LaneSocket.connect(host: "127.0.0.1", port: listener.port)
        let link = SocketLink(socket: try #require(listener.accept()), peer: Self.member(1, host: ""), region: region, layout: layout)
        return (link, writer, region, layout)
    }

    /// A real connection into a link: a good frame lands and posts, the
    /// bad one after it loses the peer with the reason, and nothing of it
    /// is written.
    @Test func aMalformedFrameLosesThePeerAfterLandingTheGoodOnes() throws {
        let (link, writer, region, layout) = try connectedLink(epoch: 1)
        let progress = SocketProgress([link])
        let slot = layout.reduceSlotOffset(source: 1, parity: 0)
        var bytes = [UInt8](repeating: 0, count: 2 * LinkFrame.bytes + 4)
        bytes.withUnsafeMutableBytes { b in
            LinkFrame(offset: slot, length: 4, posts: true, count: 1).encode(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<24]))
            b.storeBytes(of: Float(2.5), toByteOffset: 24, as: Float.self)
            LinkFrame(offset: 8, length: 4, posts: true, count: 2).encode(into: UnsafeMutableRawBufferPointer(rebasing: b[28..<52]))
        }
        try writer.send(bytes)
        let words = ArrivalWords(base: region.bytes.baseAddress!, layout: layout)
        var failure: TensorParallelError?
        for _ in 0..<100 where failure == nil {
            do { try progress.wait(upTo: .milliseconds(20)) } catch { failure = error }
        }
        #expect(words.arrived(from: 1, count: 1) && !words.arrived(from: 1, count: 2))
        #expect(region.bytes.load(fromByteOffset: slot, as: Float.self) == 2.5)
        #expect(failure?.code == .rankLost && failure?.message.contains("outside this rank's region") == true, "\(String(describing: failure))")
        #expect(link.health.lost()?.contains("outside this rank's region") == true)
        writer.close()
    }

    @Test func aPeerThatHangsUpIsLostAndSaysSo() throws {
        let (link, writer, _, _) = try connectedLink(epoch: 2)
        let progress = SocketProgress([link])
        #expect(link.health.lost() == nil)
        writer.close()
        // The watchdog's look, before anyone reads: the hang-up shows.
        var seen: String?
        for _ in 0..<100 where seen == nil {
            seen = link.health.lost()
            usleep(10_000)
        }
        #expect(seen == "closed its connection")
        // Between frames a close is the end of what the peer had to say
        // (a stopped rank closes so), not an error in itself.
        try progress.drainAll()
        #expect(link.isClosed)
    }

    /// The last frame before a close lands and posts; a close in the
    /// middle of a frame is an error naming it.
    @Test func aCloseAfterAFrameLandsItAndOneInsideAFrameFails() throws {
        let (link, writer, region, layout) = try connectedLink(epoch: 3)
        let progress = SocketProgress([link])
        let words = ArrivalWords(base: region.bytes.baseAddress!, layout: layout)
        var bytes = [UInt8](repeating: 0, count: LinkFrame.bytes)
        bytes.withUnsafeMutableBytes { LinkFrame(offset: 0, length: 0, posts: true, count: 1).encode(into: $0) }
        try writer.send(bytes)
        writer.close()
        for _ in 0..<100 where !link.isClosed { try progress.wait(upTo: .milliseconds(20)) }
        #expect(words.arrived(from: 1, count: 1) && link.isClosed)

        let (cut, half, _, _) = try connectedLink(epoch: 4)
        bytes.withUnsafeMutableBytes { LinkFrame(offset: layout.planOffset, length: 64, posts: true, count: 1).encode(into: $0) }
        try half.send(bytes + [UInt8](repeating: 7, count: 10))
        half.close()
        var failure: TensorParallelError?
        for _ in 0..<100 where failure == nil {
            do { try SocketProgress([cut]).wait(upTo: .milliseconds(20)) } catch { failure = error }
        }
        #expect(failure?.message.contains("closed its connection in the middle of a write") == true, "\(String(describing: failure))")
    }
}
