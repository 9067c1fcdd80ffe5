import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer
import LoomTesting

/// What every backend must do the same way: land bytes, count immediates
/// once each in any order, refuse what it must, and fail rather than hang.
@Suite("Transfer backends, one contract")
struct TransferBackendTests {
    let source: RegisteredRegion = {
        let region = RegionTable(owner: "writer", epoch: 1).register(length: 1 << 16)
        try! region.fill(offset: 0, with: (0..<(1 << 16)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        return region
    }()

    @Test("single, paged and immediate-only writes land and count", arguments: Backend.allCases)
    func writes(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            let peer = peers[0]
            try await backend.withTransport(to: peer) { transport in
                try await transport.write(.single(from: source, offset: 100, count: 50, to: peer.region.descriptor, offset: 1000, immediate: 1))
                try await transport.write(.paged(from: source, pages: [3, 1], stride: 256, to: peer.region.descriptor, pages: [0, 9], stride: 512, pageLength: 200, immediate: 1))
                try await transport.write(.immediateOnly(1))
                try await transport.write(.single(from: source, offset: 0, count: 8, to: peer.region.descriptor, offset: 4000))
                try await peer.target.counters.wait(for: 1, count: 3, timeout: .seconds(30))
            }
            #expect(peer.target.counters.count(1) == 3)
            #expect(try peer.region.read(offset: 1000, count: 50) == source.read(offset: 100, count: 50))
            #expect(try peer.region.read(offset: 0, count: 200) == source.read(offset: 768, count: 200))
            #expect(try peer.region.read(offset: 9 * 512, count: 200) == source.read(offset: 256, count: 200))
            #expect(try peer.region.read(offset: 4000, count: 8) == source.read(offset: 0, count: 8))
        }
    }

    @Test("a 4 MiB write in 64 pages lands whole and is counted once", arguments: Backend.allCases)
    func large(_ backend: Backend) async throws {
        let big = RegionTable(owner: "writer", epoch: 1).register(length: 4 << 20)
        try big.fill(offset: 0, with: (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 8 &+ $0) })
        try await backend.withPeers(1, length: 4 << 20) { peers in
            let peer = peers[0]
            let pages = Array(0..<64)
            try await backend.withTransport(to: peer) { transport in
                try await transport.write(.paged(from: big, pages: pages, stride: 65536, to: peer.region.descriptor, pages: pages.reversed(), stride: 65536, pageLength: 65536, immediate: 2))
            }
            try await peer.target.counters.wait(for: 2, count: 1, timeout: .seconds(30))
            #expect(peer.target.counters.count(2) == 1)
            #expect(try peer.region.read(offset: 63 * 65536, count: 65536) == big.read(offset: 0, count: 65536))
            #expect(try peer.region.read(offset: 0, count: 65536) == big.read(offset: 63 * 65536, count: 65536))
        }
    }

    @Test("scatter sends one source to many peers", arguments: Backend.allCases)
    func scatterToPeers(_ backend: Backend) async throws {
        try await backend.withPeers(2) { [source] peers in
            try await backend.withTransport(to: peers[0]) { first in
                try await backend.withTransport(to: peers[1]) { second in
                    try await scatter([
                        (first, .single(from: source, offset: 0, count: 64, to: peers[0].region.descriptor, offset: 0, immediate: 3)),
                        (second, .single(from: source, offset: 0, count: 64, to: peers[1].region.descriptor, offset: 64, immediate: 3)),
                    ])
                }
            }
            for peer in peers { try await peer.target.counters.wait(for: 3, count: 1, timeout: .seconds(30)) }
            #expect(try peers[1].region.read(offset: 64, count: 64) == source.read(offset: 0, count: 64))
        }
    }

    @Test("a descriptor from before the owner's restart is refused", arguments: Backend.allCases)
    func staleDescriptor(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            var stale = peers[0].region.descriptor
            stale.epoch -= 1
            try await backend.withTransport(to: peers[0]) { transport in
                await expectTransferError([.staleDescriptor]) {
                    try await transport.write(.single(from: source, offset: 0, count: 8, to: stale, offset: 0, immediate: 4))
                }
            }
            #expect(peers[0].target.counters.count(4) == 0)
        }
    }

    @Test("a write past the region's real end is refused and counts nothing", arguments: Backend.allCases)
    func outsideRegion(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            var forged = peers[0].region.descriptor
            forged.length += 4096
            try await backend.withTransport(to: peers[0]) { transport in
                do {
                    try await transport.write(.single(from: source, offset: 0, count: 1024, to: forged, offset: peers[0].region.count - 512, immediate: 5))
                    Issue.record("a write past the region was accepted")
                } catch is TransferError {}
            }
            #expect(peers[0].target.counters.count(5) == 0)
            #expect(try peers[0].region.read(offset: peers[0].region.count - 512, count: 512) == [UInt8](repeating: 0, count: 512))
        }
    }

    @Test("a write into a deregistered region fails and counts nothing", arguments: Backend.allCases)
    func deregistered(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            let peer = peers[0]
            peer.deregister(peer.region)
            try await backend.withTransport(to: peer) { transport in
                do {
                    try await transport.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 0, immediate: 6))
                    Issue.record("a write into a deregistered region was accepted")
                } catch is TransferError {}
            }
            #expect(peer.target.counters.count(6) == 0)
        }
    }

    /// Not `fabricShm`: there a refused write wedges the pair for good
    /// (`FabricTests.shmRefusalWedgesThePair`).
    @Test("after a refused write the same transport's next write lands and counts", arguments: Backend.allCases.filter { $0 != .fabricShm })
    func usableAfterRefusal(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            let peer = peers[0]
            var forged = peer.region.descriptor
            forged.length += 4096
            try await backend.withTransport(to: peer) { transport in
                for round in 0..<2 {
                    await expectTransferError([.ackLost, .outOfRegion, .invalidRequest, .staleDescriptor]) {
                        try await transport.write(.single(from: source, offset: 0, count: 64, to: forged, offset: peer.region.count, immediate: 11))
                    }
                    try await transport.write(.single(from: source, offset: 0, count: 64, to: peer.region.descriptor, offset: round * 64, immediate: 12))
                }
            }
            try await peer.target.counters.wait(for: 12, count: 2, timeout: .seconds(30))
            #expect(peer.target.counters.count(11) == 0)
            #expect(try peer.region.read(offset: 64, count: 64) == source.read(offset: 0, count: 64))
        }
    }
}

@Suite("Transfer backends under injected faults")
struct TransferFaultTests {
    let source = writerSource(filledWith: 0xAB)

    @Test("duplicated, reordered and delayed writes are each counted exactly once", arguments: Backend.allCases)
    func duplicateReorderDelay(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            let peer = peers[0]
            try await backend.withTransport(to: peer) { transport in
                let faulty = FaultInjectingTransport(wrapping: transport, faults: [.duplicate, .reorder, .delay(.milliseconds(5)), .pass, .duplicate])
                for i in 0..<4 {
                    try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: i * 16, immediate: 8))
                }
                try await faulty.write(.immediateOnly(8))
                try await peer.target.counters.wait(for: 8, count: 5, timeout: .seconds(30))
            }
            #expect(peer.target.counters.count(8) == 5)
        }
    }

    @Test("a lost acknowledgement is a failure, and the write is not replayed", arguments: Backend.allCases)
    func lostAck(_ backend: Backend) async throws {
        try await backend.withPeers(1) { [source] peers in
            let peer = peers[0]
            try await backend.withTransport(to: peer) { transport in
                let faulty = FaultInjectingTransport(wrapping: transport, faults: [.dropAck, .drop])
                await expectTransferError([.ackLost]) {
                    try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 0, immediate: 9))
                }
                await expectTransferError([.ackLost]) {
                    try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 16, immediate: 9))
                }
            }
            // The first landed once; the second never left.
            try await peer.target.counters.wait(for: 9, count: 1, timeout: .seconds(30))
            #expect(peer.target.counters.count(9) == 1)
            #expect(try peer.region.read(offset: 16, count: 16) == [UInt8](repeating: 0, count: 16))
        }
    }

    @Test("a peer killed mid-transfer fails the writer and times out the waiter, no hang", arguments: Backend.allCases)
    func peerKilled(_ backend: Backend) async throws {
        let peer = try await backend.startPeer(name: "victim")
        try await backend.withTransport(to: peer, ackTimeout: .seconds(3)) { [source] transport in
            let faulty = FaultInjectingTransport(wrapping: transport, faults: [.pass, .killPeer]) { await peer.kill() }
            try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 0, immediate: 10))
            await expectTransferError([.ackLost, .peerUnavailable]) {
                try await faulty.write(.single(from: source, offset: 0, count: 16, to: peer.region.descriptor, offset: 16, immediate: 10))
            }
        }
        await expectTransferError([.timedOut]) {
            try await peer.target.counters.wait(for: 10, count: 2, timeout: .milliseconds(200))
        }
        #expect(peer.target.counters.count(10) == 1)
        peer.release()
    }
}
