import LoomWire
import NIOCore
import NIOConcurrencyHelpers
import Testing
@testable import LoomTransfer

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` until it holds; throws (ending the test) after `timeout`.
func eventually(_ what: String, timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            throw TimedOut(description: "timed out waiting until \(what)")
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}

@Suite("Transfer verbs backend: device discovery on this machine")
struct VerbsDiscoveryTests {
    @Test("asking for verbs with no RDMA device says so and names the fallbacks",
          .enabled(if: LibibverbsDevice.deviceNames().isEmpty, "this machine has an RDMA device"))
    func noDevice() {
        #expect(throws: TransferError(.backendUnavailable, "no RDMA device (ibv_get_device_list found none); use tcp or shm")) {
            try LibibverbsDevice()
        }
        #expect(throws: TransferError(.backendUnavailable, LibibverbsDevice.noDeviceMessage)) {
            try LibibverbsDevice(name: "mlx5_0")
        }
    }

    @Test("a peer whose HELLO offers no verbs is refused before any queue pair is made")
    func peerWithoutVerbs() async throws {
        let peer = try await Backend.tcp.startPeer()
        let device = FakeVerbsDevice()
        let endpoint = VerbsEndpoint(device: device)
        await expectTransferError([.backendUnavailable]) {
            try await VerbsTransport.withTransport(to: peer.server.localAddress, endpoint: endpoint, configuration: RPCConfiguration(nodeName: "writer")) { _ in }
        }
        #expect(device.states.isEmpty)
        endpoint.close()
        await peer.kill()
    }
}

@Suite("Transfer verbs connect call")
struct VerbsConnectCallTests {
    @Test("a writer that leaves mid-call, even cancelled, has its queue pair destroyed on the target")
    func writerGoneClosesTargetQueuePair() async throws {
        let peer = try await Backend.verbsFake.startPeer()
        let device = try #require(peer.verbs?.endpoint.device as? FakeVerbsDevice)
        let endpoint = VerbsEndpoint(device: Backend.fakeVerbsNetwork.device())
        defer { endpoint.close() }
        let (connected, signal) = AsyncStream<Void>.makeStream()
        let writer = Task {
            try await VerbsTransport.withTransport(to: peer.server.localAddress, endpoint: endpoint, configuration: RPCConfiguration(nodeName: "writer")) { _ in
                signal.yield()
                try await Task.sleep(for: .seconds(600))
            }
        }
        var waiting = connected.makeAsyncIterator()
        _ = await waiting.next()
        #expect(device.queuePairCount == 1)
        writer.cancel()
        _ = try? await writer.value
        try await eventually("the target destroyed its queue pair") { device.queuePairCount == 0 }
        await peer.kill()
    }
}

/// A target that takes the connect call and never answers it: its HELLO
/// offers verbs, and each call waits until the writer ends it.
struct SilentVerbsTarget {
    let server: RPCServer
    let endpoint: VerbsEndpoint
    let running: Task<Void, any Error>
    /// "called" as each connect call reaches it, "ended" as each ends.
    let events: NIOLockedValueBox<[String]>

    static func start() async throws -> SilentVerbsTarget {
        let events = NIOLockedValueBox<[String]>([])
        var services = RPCServices()
        services.serverStreaming(VerbsTarget.connectMethod) { _, _ in
            events.withLockedValue { $0.append("called") }
            await untilCancelled()
            events.withLockedValue { $0.append("ended") }
        }
        let endpoint = VerbsEndpoint(device: FakeVerbsDevice())
        var configuration = RPCConfiguration(nodeName: "silent")
        configuration.transferBackends = [endpoint.offer]
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: configuration)
        return SilentVerbsTarget(server: server, endpoint: endpoint, running: Task { try await server.run() }, events: events)
    }

    /// A writer setting up a queue pair with this target, and no more.
    func connectWriter(through endpoint: VerbsEndpoint, setupTimeout: Duration) -> Task<Void, any Error> {
        Task { [server] in
            try await VerbsTransport.withTransport(to: server.localAddress, endpoint: endpoint,
                                                   configuration: RPCConfiguration(nodeName: "writer"), setupTimeout: setupTimeout) { _ in }
        }
    }

    /// Waits (bounded) until the events so far are `expected`.
    func expectEvents(_ expected: [String]) async throws {
        try await eventually("the silent target saw \(expected)", timeout: .seconds(30)) { events.withLockedValue { $0 } == expected }
    }

    func stop() async {
        running.cancel()
        _ = try? await running.value
        endpoint.close()
    }
}

/// The task's outcome once it ends; throws if it is still running after
/// `timeout`, so that a hang fails the test instead of stalling the suite.
func outcome<T: Sendable>(of task: Task<T, any Error>, within timeout: Duration) async throws -> Result<T, any Error> {
    let ended = NIOLockedValueBox(false)
    Task {
        _ = await task.result
        ended.withLockedValue { $0 = true }
    }
    try await eventually("the task ended", timeout: timeout) { ended.withLockedValue { $0 } }
    return await task.result
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

@Suite("Transfer verbs: a target that never answers the connect call")
struct VerbsSilentTargetTests {
    @Test("setting up fails after the setup timeout, and the unanswered call is ended")
    func setupTimesOut() async throws {
        let target = try await SilentVerbsTarget.start()
        let endpoint = VerbsEndpoint(device: Backend.fakeVerbsNetwork.device())
        defer { endpoint.close() }
        let writer = target.connectWriter(through: endpoint, setupTimeout: .milliseconds(200))
        let error = try await outcome(of: writer, within: .seconds(30)).failure as? TransferError
        #expect(error?.code == .peerUnavailable, "\(String(describing: error))")
        #expect(error?.message.contains("did not answer the verbs connect call within") == true, "\(String(describing: error))")
        try await target.expectEvents(["called", "ended"])
        await target.stop()
    }

    @Test("a writer cancelled while the pair is being set up stops waiting at once")
    func cancelledWhileSettingUp() async throws {
        let target = try await SilentVerbsTarget.start()
        let endpoint = VerbsEndpoint(device: Backend.fakeVerbsNetwork.device())
        defer { endpoint.close() }
        let writer = target.connectWriter(through: endpoint, setupTimeout: .seconds(3600))
        try await target.expectEvents(["called"])
        writer.cancel()
        // Without leaving at once the writer would wait out the hour.
        #expect(try await outcome(of: writer, within: .seconds(30)).failure != nil)
        try await target.expectEvents(["called", "ended"])
        await target.stop()
    }
}

/// A writer's queue pairs over fake devices that reach each other: a
/// failed pair is replaced by a fresh one from a new connect call.
@Suite("Transfer verbs link (fake network)")
struct VerbsLinkTests {
    let source = writerSource(filledWith: 0x5A)

    /// A write the target's device NAKs (past the region's end): on RC
    /// that breaks the target's half of the pair as well as the writer's.
    func badWrite(_ peer: BackendPeer) throws -> WriteOperation {
        var forged = peer.region.descriptor
        forged.length += 4096
        return try .single(from: source, offset: 0, count: 16, to: forged, offset: peer.region.count, immediate: 1)
    }

    func goodWrite(_ peer: BackendPeer, at offset: Int = 0) throws -> WriteOperation {
        try .single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: offset, immediate: 2)
    }

    @Test("after a failure the next write goes over a fresh pair, and the target destroys its broken half")
    func freshPairAfterFailure() async throws {
        let peer = try await Backend.verbsFake.startPeer()
        let target = try #require(peer.verbs?.endpoint.device as? FakeVerbsDevice)
        let device = Backend.fakeVerbsNetwork.device()
        let endpoint = VerbsEndpoint(device: device)
        defer { endpoint.close() }
        try await VerbsTransport.withTransport(to: peer.server.localAddress, endpoint: endpoint, configuration: RPCConfiguration(nodeName: "writer")) { [source] transport in
            try await transport.write(try goodWrite(peer))
            let before = (target.queuePairNumbers, device.queuePairNumbers)
            await expectTransferError([.ackLost]) { try await transport.write(try badWrite(peer)) }
            try await transport.write(try goodWrite(peer, at: 16))
            #expect(device.queuePairCount == 1, "the writer's failed queue pair is destroyed")
            #expect(device.queuePairNumbers.isDisjoint(with: before.1))
            try await eventually("the target destroyed its broken half") { target.queuePairCount == 1 }
            #expect(target.queuePairNumbers.isDisjoint(with: before.0))
            #expect(try peer.region.read(offset: 16, count: 16) == source.read(offset: 0, count: 16))
        }
        try await peer.target.counters.wait(for: 2, count: 2, timeout: .seconds(5))
        try await eventually("the target destroyed every queue pair of the writer") { target.queuePairCount == 0 }
        await peer.kill()
    }

    @Test("fresh pairs that keep breaking are given up after the limit; a success in between resets the count")
    func givesUp() async throws {
        let peer = try await Backend.verbsFake.startPeer()
        let target = try #require(peer.verbs?.endpoint.device as? FakeVerbsDevice)
        let endpoint = VerbsEndpoint(device: Backend.fakeVerbsNetwork.device())
        defer { endpoint.close() }
        try await VerbsTransport.withTransport(to: peer.server.localAddress, endpoint: endpoint, configuration: RPCConfiguration(nodeName: "writer")) { transport in
            for _ in 0..<(VerbsLink.reopenLimit * 2) {
                target.unreachable = true
                await expectTransferError([.ackLost]) { try await transport.write(try goodWrite(peer)) }
                target.unreachable = false
                try await transport.write(try goodWrite(peer))
            }
            target.unreachable = true
            for _ in 0...VerbsLink.reopenLimit {
                await expectTransferError([.ackLost]) { try await transport.write(try goodWrite(peer)) }
            }
            target.unreachable = false
            do {
                try await transport.write(try goodWrite(peer))
                Issue.record("a link past its limit wrote again")
            } catch let error as TransferError {
                #expect(error.code == .peerUnavailable)
                #expect(error.message.contains("3 fresh queue pairs in a row broke"), "\(error)")
                #expect(error.message.contains("retryExceeded"), "\(error)")
            }
        }
        await peer.kill()
    }

    @Test("writes the target refuses (stale keys) never make the link give up")
    func refusalsDoNotCount() async throws {
        let peer = try await Backend.verbsFake.startPeer()
        let endpoint = VerbsEndpoint(device: Backend.fakeVerbsNetwork.device())
        defer { endpoint.close() }
        try await VerbsTransport.withTransport(to: peer.server.localAddress, endpoint: endpoint, configuration: RPCConfiguration(nodeName: "writer")) { transport in
            for _ in 0..<(VerbsLink.reopenLimit * 2) {
                await expectTransferError([.ackLost]) { try await transport.write(try badWrite(peer)) }
            }
            try await transport.write(try goodWrite(peer))
        }
        try await peer.target.counters.wait(for: 2, count: 1, timeout: .seconds(5))
        await peer.kill()
    }
}

/// The endpoint's write path against a fake device the test completes by
/// hand: one write operation is one work request per segment, the
/// progress thread turns completions into finished writes.
@Suite("Transfer verbs endpoint (fake device, progress thread)")
struct VerbsEndpointTests {
    struct Setup {
        let device = FakeVerbsDevice()
        let endpoint: VerbsEndpoint
        let qp: UInt32
        let counters = ImmediateCounters()

        init(depth: Int) throws {
            endpoint = VerbsEndpoint(device: device, sendQueueDepth: depth, receiveDepth: 8)
            var remote = device.port
            remote.qpNum = 500
            qp = try endpoint.openQueuePair().qpNum
            try endpoint.connect(qp, to: remote)
            endpoint.onImmediate { [counters] in counters.record($0) }
        }

        func segment(_ count: Int, at address: UInt64) -> VerbsSegment {
            VerbsSegment(bytes: ByteBuffer(repeating: 0xCD, count: count), remoteAddress: address, remoteKey: 42)
        }

        func write(_ segments: [VerbsSegment], immediate: UInt32? = nil) -> Task<Void, Error> {
            Task { [endpoint, qp] in try await endpoint.write(on: qp, segments, immediate: immediate) }
        }
    }

    @Test("writes beyond the send-queue depth wait and post as completions free slots")
    func accounting() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        let writes = (0..<5).map { setup.write([setup.segment(64, at: UInt64($0) * 64)]) }
        try await eventually("two writes are posted") { setup.device.posted.count == 2 }
        try await Task.sleep(for: .milliseconds(20))
        #expect(setup.device.posted.count == 2, "posted past the send-queue depth")
        for done in 0..<5 {
            try await eventually("write \(done + 1) is posted") { setup.device.posted.count > done }
            setup.device.complete(setup.device.posted[done])
        }
        for write in writes { try await write.value }
        #expect(setup.endpoint.machine(of: setup.qp)?.inFlight.isEmpty == true)
        try await eventually("every source registration is released") { setup.device.liveRegistrations == 0 }
    }

    @Test("a write of three segments is three RDMA WRITEs, the immediate on the last, done when all are")
    func segments() async throws {
        let setup = try Setup(depth: 8)
        defer { setup.endpoint.close() }
        let write = setup.write([setup.segment(16, at: 0), setup.segment(32, at: 100), setup.segment(8, at: 200)], immediate: 77)
        try await eventually("three writes are posted") { setup.device.posted.count == 3 }
        let requests = setup.device.postedRequests
        #expect(requests.map(\.immediate) == [nil, nil, 77])
        #expect(requests.map(\.length) == [16, 32, 8])
        #expect(requests.map(\.remoteAddress) == [0, 100, 200])
        #expect(Set(requests.map(\.localKey)).count == 3, "each source is registered")
        setup.device.complete(requests[0].id)
        setup.device.complete(requests[2].id)
        try await Task.sleep(for: .milliseconds(20))
        #expect(setup.device.liveRegistrations == 3, "sources released while a write still reads them")
        setup.device.complete(requests[1].id)
        try await write.value
        #expect(setup.device.liveRegistrations == 0)
    }

    @Test("an immediate alone is one zero-length WRITE WITH IMM")
    func immediateOnly() async throws {
        let setup = try Setup(depth: 8)
        defer { setup.endpoint.close() }
        let write = setup.write([], immediate: 5)
        try await eventually("the write is posted") { setup.device.posted.count == 1 }
        #expect(setup.device.postedRequests.first?.length == 0)
        #expect(setup.device.postedRequests.first?.immediate == 5)
        setup.device.complete(setup.device.posted[0])
        try await write.value
    }

    @Test("a full send queue is retried when a completion frees it; the write still succeeds")
    func queueFull() async throws {
        let setup = try Setup(depth: 4)
        defer { setup.endpoint.close() }
        let first = setup.write([setup.segment(8, at: 0)])
        try await eventually("the first write is posted") { setup.device.posted.count == 1 }
        setup.device.refuseNextPosts = 1
        let second = setup.write([setup.segment(8, at: 8)])
        try await eventually("the second write waits") { setup.endpoint.machine(of: setup.qp)?.waiting.count == 1 }
        #expect(setup.device.posted.count == 1)
        setup.device.complete(setup.device.posted[0])
        try await first.value
        try await eventually("the second write is posted") { setup.device.posted.count == 2 }
        setup.device.complete(setup.device.posted[1])
        try await second.value
    }

    @Test("an error completion fails every pending write, and the failed queue pair takes no more")
    func errorFailsQueuePair() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        let writes = (0..<3).map { setup.write([setup.segment(8, at: UInt64($0) * 8)]) }
        try await eventually("two writes are posted") { setup.device.posted.count == 2 }
        setup.device.complete(setup.device.posted[0], status: .retryExceeded)
        for write in writes {
            await expectTransferError([.ackLost]) { try await write.value }
        }
        #expect(setup.device.states.last == .error)
        #expect(!setup.endpoint.isUp(setup.qp))
        try await eventually("failed writes' sources are released") { setup.device.liveRegistrations == 0 }
        await expectTransferError([.ackLost]) { try await setup.write([setup.segment(8, at: 0)]).value }
        #expect(setup.device.posted.count == 2)
    }

    @Test("a queue pair the device reports broken fails its pending write at once")
    func queuePairEvent() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        let write = setup.write([setup.segment(8, at: 0)])
        try await eventually("the write is posted") { setup.device.posted.count == 1 }
        setup.device.report(.queuePairFailed(setup.qp, "local catastrophic error"))
        do {
            try await write.value
            Issue.record("a write on a broken queue pair succeeded")
        } catch let error as TransferError {
            #expect(error.code == .ackLost)
            #expect(error.message.contains("local catastrophic error"), "\(error)")
        }
        #expect(!setup.endpoint.isUp(setup.qp))
    }

    @Test("this port going down fails every queue pair and refuses new ones until it is back; another port does nothing")
    func portEvents() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        let write = setup.write([setup.segment(8, at: 0)])
        try await eventually("the write is posted") { setup.device.posted.count == 1 }
        setup.device.report(.portDown(2, "port error"))
        try await Task.sleep(for: .milliseconds(50))
        #expect(setup.endpoint.isUp(setup.qp), "another port's error failed this port's queue pair")
        setup.device.report(.portDown(1, "port error"))
        await expectTransferError([.ackLost]) { try await write.value }
        do {
            _ = try setup.endpoint.openQueuePair()
            Issue.record("opened a queue pair on a port that is down")
        } catch {
            #expect(error.code == .peerUnavailable)
            #expect(error.message.contains("port is down (port 1: port error)"), "\(error)")
        }
        setup.device.report(.portUp(1))
        try await eventually("the port is usable again") { (try? setup.endpoint.openQueuePair()) != nil }
        setup.device.report(.deviceFailed("device fatal"))
        try await eventually("the failed device refuses queue pairs") { (try? setup.endpoint.openQueuePair()) == nil }
        setup.device.report(.portUp(1))
        try await Task.sleep(for: .milliseconds(50))
        #expect(throws: TransferError.self, "a failed device came back with its port") { try setup.endpoint.openQueuePair() }
    }

    @Test("each peer immediate is counted once, and its receive is replaced")
    func immediatesCountedOnce() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        setup.device.deliverImmediate(7, on: setup.qp)
        setup.device.deliverImmediate(7, on: setup.qp)
        setup.device.deliverImmediate(8, on: setup.qp)
        try await setup.counters.wait(for: 8, count: 1, timeout: .seconds(5))
        #expect(setup.counters.count(7) == 2)
        #expect(setup.endpoint.isUp(setup.qp))
        // Each consumed receive was replaced: the peer can keep writing.
        #expect(setup.device.receivesPosted(on: setup.qp) == 8 + 3)
    }

    @Test("an immediate polled after its queue pair closed still counts; a flushed receive does not")
    func immediateAfterClose() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        let tag = setup.device.receiveTag(of: setup.qp)
        // The writer disconnected before the progress thread read its last
        // write's receive completion, which stays in the completion queue.
        setup.endpoint.closeQueuePair(setup.qp)
        setup.device.deliverImmediate(9, on: setup.qp, tag: tag, status: .flushed)
        setup.device.deliverImmediate(9, on: setup.qp, tag: tag)
        try await setup.counters.wait(for: 9, count: 1, timeout: .seconds(5))
        #expect(setup.counters.count(9) == 1)
    }

    @Test("the thousandth immediate reaches the handler as directly as the first")
    func handlerDepthStaysFlat() async throws {
        let setup = try Setup(depth: 2)
        defer { setup.endpoint.close() }
        // Where the handler's frame sits on the stack, per call: a handler
        // re-wrapped on each read would sit deeper every time.
        let depths = NIOLockedValueBox<[UInt]>([])
        setup.endpoint.onImmediate { _ in
            var local = 0
            let address = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
            depths.withLockedValue { $0.append(address) }
        }
        for immediate in 1...1000 {
            setup.device.deliverImmediate(UInt32(immediate), on: setup.qp)
            try await eventually("immediate \(immediate) is handled") { depths.withLockedValue { $0.count } == immediate }
        }
        let seen = depths.withLockedValue { $0 }
        #expect(seen.first == seen.last, "the handler ran \(Int(bitPattern: seen.first ?? 0) - Int(bitPattern: seen.last ?? 0)) bytes deeper after 1000 immediates")
    }

    @Test("a queue pair the completion queue has no room for is refused, and one closing makes room")
    func completionQueueRoom() throws {
        let device = FakeVerbsDevice(completionQueueDepth: 2 * (4 + 8))
        let endpoint = VerbsEndpoint(device: device, sendQueueDepth: 4, receiveDepth: 8)
        defer { endpoint.close() }
        let first = try endpoint.openQueuePair()
        _ = try endpoint.openQueuePair()
        #expect(throws: TransferError.self) { try endpoint.openQueuePair() }
        endpoint.closeQueuePair(first.qpNum)
        _ = try endpoint.openQueuePair()
    }

    @Test("closing the endpoint fails writes still in flight and closes the device")
    func closeFailsPending() async throws {
        let setup = try Setup(depth: 2)
        let write = setup.write([setup.segment(8, at: 0)])
        try await eventually("the write is posted") { setup.device.posted.count == 1 }
        setup.endpoint.close()
        await expectTransferError([.ackLost]) { try await write.value }
        #expect(setup.device.isClosed)
        await expectTransferError([.peerUnavailable]) {
            try await setup.endpoint.write(on: setup.qp, [setup.segment(8, at: 0)], immediate: nil)
        }
    }
}
