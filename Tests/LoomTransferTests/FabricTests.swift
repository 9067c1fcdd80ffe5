import CLoomFabric
import Foundation
import LoomWire
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import LoomTransfer

@Suite("Transfer fabric backend")
struct FabricTests {
    @Test("completion data keeps immediate, slot and sequence apart")
    func completionData() {
        let data = FabricCompletionData(immediate: 0xDEAD_BEEF, slot: 0x1234, sequence: 0xFFFF)
        #expect(data.raw == 0x1234_FFFF_DEAD_BEEF)
        #expect(FabricCompletionData(data.raw) == data)
    }

    @Test("a target counts each (slot, sequence) once, and nothing from a slot it never gave out")
    func deduplication() {
        var slots = SenderSlots()
        let a = slots.attach(sender: "a#1"), b = slots.attach(sender: "b#1")
        func first(_ slot: UInt16, _ sequence: UInt16) -> Bool {
            slots.firstDelivery(FabricCompletionData(immediate: 1, slot: slot, sequence: sequence))
        }
        #expect(a != b)
        var seen = [first(a, 7), first(a, 7), first(b, 7), first(999, 1)]
        #expect(seen == [true, false, true, false])
        // Past the window a sequence number may come back (after 65536 writes).
        seen = (8..<(8 + UInt16(DuplicateFilter<UInt16>.defaultWindow))).map { first(a, $0) }
        #expect(seen.allSatisfy { $0 })
        #expect(first(a, 7))
    }

    @Test("a writer numbers a repeated operation the same, new ones apart")
    func sequenceNumbers() {
        var numbers = SequenceNumbers()
        let first = numbers.number(for: 100), second = numbers.number(for: 101), again = numbers.number(for: 100)
        #expect(first != second)
        #expect(again == first)
    }

    @Test("writes are gathered in runs of the provider's limit, to one peer, a write with data ending its run")
    func grouping() {
        func write(_ peer: UInt64, data: UInt64? = nil) -> FabricWrite {
            FabricWrite(bytes: ByteBuffer(), peer: peer, remoteAddress: 0, key: 1, data: data)
        }
        let writes = [write(1), write(1), write(1), write(1), write(1), write(1, data: 7), write(2), write(3)]
        #expect(FabricWriteBatch.grouped(writes, limit: 4) == [0..<4, 4..<6, 6..<7, 7..<8])
        #expect(FabricWriteBatch.grouped(writes, limit: 1) == writes.indices.map { $0..<$0 + 1 })
        #expect(FabricWriteBatch.grouped([], limit: 4).isEmpty)
    }

    @Test("the thousandth completion reaches the remote-data handler as directly as the first")
    func handlerDepthStaysFlat() throws {
        let endpoint = try FabricEndpoint(provider: "tcp;ofi_rxm", node: "127.0.0.1")
        defer { endpoint.close() }
        // Where the handler's frame sits on the stack, per call: a handler
        // re-wrapped on each read would sit deeper every time.
        let depths = NIOLockedValueBox<[UInt]>([])
        endpoint.onRemoteData { _ in
            var local = 0
            let address = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
            depths.withLockedValue { $0.append(address) }
        }
        for data in 1...1000 {
            var completion = loom_fabric_completion()
            completion.remote_data = 1
            completion.data = UInt64(data)
            endpoint.deliver([completion])
        }
        let seen = depths.withLockedValue { $0 }
        #expect(seen.count == 1000)
        #expect(seen.first == seen.last, "the handler ran \(Int(bitPattern: seen.first ?? 0) - Int(bitPattern: seen.last ?? 0)) bytes deeper after 1000 completions")
    }

    @Test("when callers stop polling without parking, the progress thread takes the queue back long before its bound")
    func progressThreadResumesAfterPolls() throws {
        let handoff = ProgressHandoff()
        handoff.callerStartsPolling()
        let returned = DispatchSemaphore(value: 0)
        let progress = Thread {
            handoff.progressThreadWaits(atMost: .seconds(120))
            returned.signal()
        }
        progress.start()
        // Let the progress thread find a caller polling and wait.
        Thread.sleep(forTimeInterval: 0.05)
        #expect(returned.wait(timeout: .now()) == .timedOut, "the progress thread left while a caller polled")
        handoff.callerStopsPolling(parking: false)
        // Two lingers (1 ms) are what it should take; 30 s only keeps a
        // noisy machine from failing it, and is far short of the 120 s bound.
        #expect(returned.wait(timeout: .now() + 30) == .success, "the progress thread waited out its bound after the last poll")
    }

    @Test("an unknown provider fails to open with a message that says where to look")
    func unknownProvider() {
        do {
            _ = try FabricEndpoint(provider: "no-such-provider", node: "127.0.0.1")
            Issue.record("opened a provider that does not exist")
        } catch {
            #expect(error.code == .peerUnavailable)
            #expect(error.message.contains("no-such-provider") && error.message.contains("fi_info"), "\(error)")
        }
    }

    @Test("a peer that offers no fabric endpoint in its HELLO is refused with what it does offer")
    func noOffer() async throws {
        let peer = try await Backend.tcp.startPeer()
        let endpoint = try FabricEndpoint(provider: Backend.fabricProvider, node: "127.0.0.1")
        defer { endpoint.close() }
        var configuration = RPCConfiguration(nodeName: "writer")
        configuration.keepaliveInterval = nil
        await expectTransferError([.peerUnavailable]) {
            try await FabricTransport.withTransport(to: peer.server.localAddress, endpoint: endpoint, configuration: configuration) { _ in }
        }
        await peer.kill()
    }

    @Test("the HELLO carries the endpoint's provider and address both ways")
    func helloOffers() async throws {
        let peer = try await Backend.fabric.startPeer()
        let endpoint = try FabricEndpoint(provider: Backend.fabricProvider, node: "127.0.0.1")
        defer { endpoint.close() }
        var configuration = RPCConfiguration(nodeName: "writer")
        configuration.keepaliveInterval = nil
        configuration.transferBackends = [endpoint.offer]
        let offer = try await RPCConnection.withConnection(to: peer.server.localAddress, configuration: configuration) { connection in
            try FabricTransport.fabricOffer(of: connection.peer.hello, provider: Backend.fabricProvider)
        }
        #expect(offer.provider == "tcp;ofi_rxm")
        #expect([UInt8](offer.address) == peer.fabric!.endpoint.address)
        #expect(endpoint.address != peer.fabric!.endpoint.address)
        await peer.kill()
    }

    @Test("closing an endpoint with a write waiting fails the write instead of hanging")
    func closeFailsPending() async throws {
        let endpoint = try FabricEndpoint(provider: Backend.fabricProvider, node: "127.0.0.1")
        // A peer address nobody listens on: the write can only wait.
        let silent = try FabricEndpoint(provider: Backend.fabricProvider, node: "127.0.0.1")
        let address = silent.address
        silent.close()
        let peer = try endpoint.insertPeer(address)
        let waiting = Task {
            try await endpoint.post([FabricWrite(bytes: ByteBuffer(bytes: [1, 2, 3]), peer: peer, remoteAddress: 0, key: 1, data: nil)], timeout: .seconds(60))
        }
        try await Task.sleep(for: .milliseconds(200))
        endpoint.close()
        await expectTransferError([.peerUnavailable, .ackLost]) { try await waiting.value }
    }

    /// libfabric 1.17's `shm` never completes a write the target dropped
    /// (unknown key, out of range), not even with an error, and keeps the
    /// pair's one command slot for it: every later write to that target is
    /// refused with EAGAIN. Why `fabric_provider: shm` is refused in the
    /// cluster config. If this starts failing, shm got better.
    @Test("on shm a refused write times out, and every later write to that target is refused, never hangs")
    func shmRefusalWedgesThePair() async throws {
        let source = RegionTable(owner: "writer", epoch: 1).register(length: 64)
        try await Backend.fabricShm.withPeers(1) { peers in
            let peer = peers[0]
            var forged = peer.region.descriptor
            forged.length += 4096
            try await Backend.fabricShm.withTransport(to: peer, ackTimeout: .milliseconds(500)) { transport in
                await expectTransferError([.ackLost]) {
                    try await transport.write(.single(from: source, offset: 0, count: 64, to: forged, offset: peer.region.count, immediate: 1))
                }
                await expectTransferError([.peerUnavailable]) {
                    try await transport.write(.single(from: source, offset: 0, count: 64, to: peer.region.descriptor, offset: 0, immediate: 2))
                }
                // Posted straight to the endpoint, past the transport's
                // connection probe: the provider itself refuses it.
                let fabric = try #require(transport as? FabricTransport)
                let key = try Loom_Transfer_FabricRegionKey(serializedBytes: try #require(peer.region.descriptor.backendKeys[FabricTarget.backendKey]))
                do {
                    try await fabric.endpoint.post([FabricWrite(bytes: ByteBuffer(bytes: [1, 2, 3, 4]), peer: fabric.peer, remoteAddress: key.baseAddress, key: key.key, data: nil)],
                                                   timeout: .milliseconds(500))
                    Issue.record("shm took a write after a refused one; it may no longer wedge")
                } catch let error as TransferError {
                    #expect(error.message.contains("send queue stayed full"), "\(error)")
                }
            }
            #expect(try peer.region.read(offset: 0, count: 4) == [0, 0, 0, 0])
            #expect(peer.target.counters.count(2) == 0)
        }
    }

    @Test("two shm endpoints given the same host both open: shm has no network address")
    func shmIgnoresTheNode() throws {
        let first = try FabricEndpoint(provider: "shm", node: "127.0.0.1")
        defer { first.close() }
        let second = try FabricEndpoint(provider: "shm", node: "127.0.0.1")
        defer { second.close() }
        #expect(first.address != second.address)
    }
}
