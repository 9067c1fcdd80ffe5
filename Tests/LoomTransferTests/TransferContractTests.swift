import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer
import LoomTesting

/// The pieces every backend shares: one duplicate filter, one error
/// mapping, and the choice of backend for a region.
@Suite("Transfer: the shared contract")
struct TransferContractTests {
    @Test func theDuplicateFilterRemembersAWindowAndNoMore() {
        var filter = DuplicateFilter<UInt64>(window: 3)
        let fresh = [1, 2, 3].map { filter.insert($0) }
        #expect(fresh == [true, true, true])
        let repeated = filter.insert(2)
        #expect(!repeated, "a repeat inside the window is a duplicate")
        let moved = filter.insert(4)
        #expect(moved, "the window moves on")
        #expect(!filter.contains(1) && filter.contains(4), "the oldest id left to make room")
        let returned = filter.insert(1)
        #expect(returned, "an id long gone counts as new")
    }

    @Test func aTargetAppliesAWriteDeliveredTwiceOnceAndKeepsBoundedMemory() throws {
        let regions = RegionTable(owner: "decode-0", epoch: 1)
        let region = regions.register(length: 64)
        let target = TransferTarget(regions: regions)
        func write(_ opID: UInt64, sender: String) throws -> Loom_Transfer_WriteAck {
            let request = Loom_Transfer_WriteRequest.single(into: region.descriptor, at: 0, count: 4, immediate: 9, opID: opID, sender: sender)
            return try target.apply(request, payload: ByteBuffer(bytes: [1, 2, 3, 4]))
        }
        #expect(try !write(1, sender: "prefill-0").duplicate)
        #expect(try write(1, sender: "prefill-0").duplicate)
        #expect(try !write(1, sender: "prefill-1").duplicate, "op ids are per sender")
        #expect(target.counters.count(9) == 2, "the duplicate was acknowledged but not counted")
        var applied = AppliedWrites()
        let steady = SenderIncarnation(name: "prefill-0", epoch: 1)
        _ = applied.insert(1, from: steady)
        for sender in 0..<(AppliedWrites.senderLimit * 2) {
            let fresh = applied.insert(1, from: SenderIncarnation(name: "writer-\(sender)", epoch: 1))
            #expect(fresh)
            // A sender that keeps writing is never the one forgotten.
            _ = applied.insert(UInt64(sender + 2), from: steady)
        }
        #expect(applied.senderCount <= AppliedWrites.senderLimit, "senders long gone are forgotten")
        #expect(applied.contains(1, from: steady), "the busy sender's history survived")
    }

    @Test func oneMappingForEveryBackendsRPCErrors() {
        let gone = TransferError(WireError(.unavailable, "decode-0 is unreachable"), backend: "tcp", peer: "127.0.0.1:1", method: 107)
        #expect(gone.code == .peerUnavailable && gone.message == "decode-0 is unreachable")
        let old = TransferError(WireError(.unknownMethod, "no method 103"), backend: "shm", peer: "decode-0", method: 103)
        #expect(old.code == .peerUnavailable && old.message.contains("serves no shm backend (method 103)"))
        let refused = TransferError(WireError(TransferError(.refused, "lease expired")), backend: "fabric", peer: "decode-0", method: 102)
        #expect(refused == TransferError(.refused, "lease expired"), "a transfer failure the target sent comes back as itself")
    }

    @Test func theBackendFollowsWhatTheRegionOffersAndWhereItsOwnerRuns() {
        let plain = RegionDescriptor(owner: "decode-0", regionID: 1, epoch: 1, length: 64)
        var shared = plain
        shared.backendKeys[SharedMemoryRegion.backendKey] = Array("/dev/shm/loom-x".utf8)
        var fabric = shared
        fabric.backendKeys[FabricTarget.backendKey] = [1]
        #expect(TransferBackend.choose(for: shared, peerHost: HostIdentity.current) == .shm)
        #expect(TransferBackend.choose(for: shared, peerHost: "another-host/net:[1]") == .tcp)
        #expect(TransferBackend.choose(for: plain, peerHost: HostIdentity.current) == .tcp, "a private pool is reached by tcp")
        #expect(TransferBackend.choose(for: fabric, peerHost: HostIdentity.current) == .fabric)
    }

    @Test func aNodeRegistersOverTheFirstBackendThatCanAndSaysWhyWhenNoneCan() throws {
        let target = TransferTarget(regions: RegionTable(owner: "store-0", epoch: 3))
        let node = TransferNode(
            target: target,
            receivers: [SharedMemoryReceiver(target: target, directory: "/nonexistent-loom-dir"), TCPReceiver(target: target)],
            configuration: RPCConfiguration(nodeName: "store-0"))
        let region = try node.register(length: 128, over: [.shm, .tcp])
        #expect(region.descriptor.backendKeys[SharedMemoryRegion.backendKey] == nil, "shm could not map, so the region is plain tcp memory")
        #expect(region.descriptor.epoch == 3 && region.descriptor.owner == "store-0")
        do {
            _ = try node.register(length: 128, over: [.shm, .fabric])
            Issue.record("no receiver can register over shm or fabric here")
        } catch let error as TransferError {
            #expect(error.code == .invalidRequest)
            #expect(error.message.contains("shm: ") && error.message.contains("/nonexistent-loom-dir"), "\(error.message)")
        }
        #expect(node.configuration.transferBackends.isEmpty, "tcp and shm need no offer in HELLO")
        var services = RPCServices()
        node.serve(into: &services)
        #expect(services.methods.contains(TCPTransport.lanesMethod) && services.methods.contains(ShmTransport.doorbellMethod))
    }

    @Test func aRegionTakenBackThroughItsReceiverRefusesWrites() throws {
        let target = TransferTarget(regions: RegionTable(owner: "store-0", epoch: 1))
        let receiver = TCPReceiver(target: target)
        let region = try receiver.register(length: 64)
        let request = Loom_Transfer_WriteRequest.single(into: region.descriptor, at: 0, count: 4, immediate: 1, opID: 1, sender: "w")
        receiver.deregister(region)
        #expect(throws: TransferError.self) { try target.apply(request, payload: ByteBuffer(bytes: [1, 2, 3, 4])) }
        #expect(target.counters.count(1) == 0)
    }
}

/// LoomTesting's transports, for the layers above: the in-memory one goes
/// through the real target's checks and counting.
@Suite("Transfer: the test transports")
struct TestTransportTests {
    @Test func anInMemoryWriteLandsIsCountedOnceAndIsRefusedWhereATargetRefuses() async throws {
        let regions = RegionTable(owner: "decode-0", epoch: 1)
        let region = regions.register(length: 4096)
        let target = TransferTarget(regions: regions)
        let source = writerSource(filledWith: 0xAB)
        let transport = FaultInjectingTransport(wrapping: InMemoryTransport(into: target), faults: [.duplicate])
        try await transport.write(.single(from: source, offset: 0, count: 64, to: region.descriptor, offset: 128, immediate: 5))
        #expect(try region.read(offset: 128, count: 64) == [UInt8](repeating: 0xAB, count: 64))
        #expect(target.counters.count(5) == 1, "delivered twice, counted once")
        var stale = region.descriptor
        stale.epoch = 2
        await expectTransferError([.staleDescriptor]) {
            try await transport.write(.single(from: source, offset: 0, count: 8, to: stale, offset: 0))
        }
    }
}
