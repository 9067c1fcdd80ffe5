import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

/// A peer that owns a region and serves the `tcp` backend on loopback.
struct Peer {
    let target: TransferTarget
    let region: RegisteredRegion
    let server: RPCServer

    static func start(name: String, epoch: UInt64 = 1, length: Int = 1 << 16) async throws -> Peer {
        let target = TransferTarget(regions: RegionTable(owner: name, epoch: epoch))
        let region = target.regions.register(length: length)
        var services = RPCServices()
        TransferService.register(into: &services, target: target)
        var configuration = RPCConfiguration(nodeName: name)
        configuration.keepaliveInterval = nil
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: configuration)
        return Peer(target: target, region: region, server: server)
    }
}

func withPeers<R: Sendable>(_ count: Int, _ body: @Sendable ([Peer]) async throws -> R) async throws -> R {
    var peers: [Peer] = []
    for i in 0..<count { peers.append(try await Peer.start(name: "peer-\(i)")) }
    return try await withThrowingTaskGroup(of: Void.self) { [peers] group in
        for peer in peers { group.addTask { try await peer.server.run() } }
        defer { group.cancelAll() }
        return try await body(peers)
    }
}

func withTransport<R: Sendable>(to peer: Peer, lanes: Int = 2, ackTimeout: Duration = .seconds(10), _ body: (TCPTransport) async throws -> R) async throws -> R {
    var configuration = RPCConfiguration(nodeName: "sender")
    configuration.keepaliveInterval = nil
    return try await TCPTransport.withTransport(to: peer.server.localAddress, lanes: lanes, configuration: configuration, ackTimeout: ackTimeout, body)
}

@Suite("Transfer tcp backend on loopback")
struct TCPTransportTests {
    let source: RegisteredRegion = {
        let region = RegionTable(owner: "sender", epoch: 1).register(length: 1 << 16)
        try! region.fill(offset: 0, with: (0..<(1 << 16)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        return region
    }()

    @Test("single, paged and immediate-only writes land and count")
    func writes() async throws {
        try await withPeers(1) { [source] peers in
            let peer = peers[0]
            try await withTransport(to: peer) { transport in
                try await transport.write(.single(from: source, offset: 100, count: 50, to: peer.region.descriptor, offset: 1000, immediate: 1))
                try await transport.write(.paged(from: source, pages: [3, 1], stride: 256, to: peer.region.descriptor, pages: [0, 9], stride: 512, pageLength: 200, immediate: 1))
                try await transport.write(.immediateOnly(1))
                try await peer.target.counters.wait(for: 1, count: 3, timeout: .seconds(30))
            }
            #expect(try peer.region.read(offset: 1000, count: 50) == source.read(offset: 100, count: 50))
            #expect(try peer.region.read(offset: 0, count: 200) == source.read(offset: 768, count: 200))
            #expect(try peer.region.read(offset: 9 * 512, count: 200) == source.read(offset: 256, count: 200))
        }
    }

    @Test("a large multi-page write is striped over lanes and counted once")
    func striped() async throws {
        let big = RegionTable(owner: "sender", epoch: 1).register(length: 4 << 20)
        try big.fill(offset: 0, with: (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 8) })
        let target = TransferTarget(regions: RegionTable(owner: "big", epoch: 1))
        let region = target.regions.register(length: 4 << 20)
        var services = RPCServices()
        TransferService.register(into: &services, target: target)
        var configuration = RPCConfiguration(nodeName: "big")
        configuration.keepaliveInterval = nil
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            try await withTransport(to: Peer(target: target, region: region, server: server), lanes: 3) { transport in
                let pages = Array(0..<64)
                try await transport.write(.paged(from: big, pages: pages, stride: 65536, to: region.descriptor, pages: pages.reversed(), stride: 65536, pageLength: 65536, immediate: 2))
            }
        }
        #expect(target.counters.count(2) == 1)
        #expect(try region.read(offset: 63 * 65536, count: 65536) == big.read(offset: 0, count: 65536))
    }

    @Test("scatter sends one source to many peers")
    func scatterToPeers() async throws {
        try await withPeers(2) { [source] peers in
            try await withTransport(to: peers[0]) { first in
                try await withTransport(to: peers[1]) { second in
                    try await scatter([
                        (first, .single(from: source, offset: 0, count: 64, to: peers[0].region.descriptor, offset: 0, immediate: 3)),
                        (second, .single(from: source, offset: 0, count: 64, to: peers[1].region.descriptor, offset: 64, immediate: 3)),
                    ])
                }
            }
            #expect(peers[0].target.counters.count(3) == 1 && peers[1].target.counters.count(3) == 1)
            #expect(try peers[1].region.read(offset: 64, count: 64) == source.read(offset: 0, count: 64))
        }
    }

    @Test("a stale descriptor is refused across the wire with its reason")
    func staleRemote() async throws {
        try await withPeers(1) { [source] peers in
            var stale = peers[0].region.descriptor
            stale.epoch = 0
            try await withTransport(to: peers[0]) { transport in
                do {
                    try await transport.write(.single(from: source, offset: 0, count: 8, to: stale, offset: 0))
                    Issue.record("stale write accepted")
                } catch let error as TransferError {
                    #expect(error.code == .staleDescriptor)
                }
            }
        }
    }
}
