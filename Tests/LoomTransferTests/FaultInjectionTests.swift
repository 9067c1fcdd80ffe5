import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

@Suite("Transfer under injected faults")
struct FaultInjectionTests {
    let source: RegisteredRegion = {
        let region = RegionTable(owner: "sender", epoch: 1).register(length: 4096)
        try! region.fill(offset: 0, with: [UInt8](repeating: 0xAB, count: 4096))
        return region
    }()

    func expectTransferError(_ code: TransferError.Code, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected \(code)")
        } catch let error as TransferError {
            #expect(error.code == code, "\(error)")
        } catch {
            Issue.record("expected \(code), got \(error)")
        }
    }

    @Test("duplicated, reordered and delayed writes are each counted exactly once")
    func duplicateReorderDelay() async throws {
        try await withPeers(1) { [source] peers in
            let peer = peers[0]
            try await withTransport(to: peer) { transport in
                let faulty = FaultInjectingTransport(wrapping: transport, faults: [.duplicate, .reorder, .delay(.milliseconds(5)), .pass])
                for i in 0..<4 {
                    try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: i * 16, immediate: 8))
                }
                try await peer.target.counters.wait(for: 8, count: 4, timeout: .seconds(30))
            }
            #expect(peer.target.counters.count(8) == 4)
        }
    }

    @Test("a lost acknowledgement is a failure, and the write is not replayed")
    func lostAck() async throws {
        try await withPeers(1) { [source] peers in
            let peer = peers[0]
            try await withTransport(to: peer) { transport in
                let faulty = FaultInjectingTransport(wrapping: transport, faults: [.dropAck, .drop])
                await expectTransferError(.ackLost) {
                    try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 0, immediate: 9))
                }
                await expectTransferError(.ackLost) {
                    try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 16, immediate: 9))
                }
            }
            // The first landed once; the second never left.
            #expect(peer.target.counters.count(9) == 1)
            #expect(try peer.region.read(offset: 16, count: 16) == [UInt8](repeating: 0, count: 16))
        }
    }

    @Test("a peer killed mid-transfer fails the writer and times out the waiter, no hang")
    func peerKilled() async throws {
        let peer = try await Peer.start(name: "victim")
        let serving = Task { try await peer.server.run() }
        try await withTransport(to: peer, ackTimeout: .seconds(5)) { [source] transport in
            let faulty = FaultInjectingTransport(wrapping: transport, faults: [.pass, .killPeer]) {
                serving.cancel()
                try? await serving.value
            }
            try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 0, immediate: 10))
            do {
                try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 16, immediate: 10))
                Issue.record("write to a killed peer succeeded")
            } catch let error as TransferError {
                #expect(error.code == .ackLost)
            }
        }
        do {
            try await peer.target.counters.wait(for: 10, count: 2, timeout: .milliseconds(200))
            Issue.record("waiter saw 2 writes")
        } catch let error as TransferError {
            #expect(error.code == .timedOut)
        }
    }
}
