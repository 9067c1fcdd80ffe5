import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

@Suite("Transfer tcp backend on loopback")
struct TCPTransportTests {
    @Test("a large write is cut into parts, striped over the lanes and counted once", arguments: [1, 3])
    func striped(lanes: Int) async throws {
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
            var sender = RPCConfiguration(nodeName: "sender")
            sender.keepaliveInterval = nil
            // Parts of 512 KiB: eight of them, more than one per lane.
            try await TCPTransport.withTransport(to: server.localAddress, lanes: lanes, configuration: sender, partBytes: 1 << 19) { transport in
                let pages = Array(0..<64)
                try await transport.write(.paged(from: big, pages: pages, stride: 65536, to: region.descriptor, pages: pages.reversed(), stride: 65536, pageLength: 65536, immediate: 2))
            }
        }
        #expect(target.counters.count(2) == 1)
        #expect(try region.read(offset: 63 * 65536, count: 65536) == big.read(offset: 0, count: 65536))
    }

    @Test("parts keep every byte in order at its offset, cut long segments, and stay within the limit")
    func parts() throws {
        let region = RegionDescriptor(owner: "peer", regionID: 1, epoch: 1, length: 1 << 20)
        let sizes = [10, 0, 25, 7, 64, 3]
        var offset = 0
        let segments = sizes.map { size in
            defer { offset += size + 100 }
            return WriteOperation.Segment(region: region, offset: offset, bytes: ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: offset + $0) }))
        }
        let parts = try TCPTransport.parts(of: segments, limit: 16)
        #expect(parts.allSatisfy { $0.reduce(0) { $0 + $1.bytes.readableBytes } <= 16 })
        #expect(parts.count == 7)
        // Every byte still sits at the offset it was meant for.
        for segment in parts.joined() {
            #expect(Array(segment.bytes.readableBytesView) == (0..<segment.bytes.readableBytes).map { UInt8(truncatingIfNeeded: segment.offset + $0) })
        }
        #expect(parts.joined().reduce(0) { $0 + $1.bytes.readableBytes } == sizes.reduce(0, +))
        #expect(try TCPTransport.parts(of: [], limit: 16).count == 1)
        let tooMany = [WriteOperation.Segment(region: region, offset: 0, bytes: ByteBuffer(repeating: 0, count: 255 * 16))]
        #expect(throws: TransferError.self) { try TCPTransport.parts(of: tooMany, limit: 16) }
        // Many small segments: a part's header lists each, so a part holds
        // a bounded number of them whatever their bytes.
        let small = (0..<10).map { WriteOperation.Segment(region: region, offset: $0 * 8, bytes: ByteBuffer(bytes: [UInt8($0)])) }
        #expect(try TCPTransport.parts(of: small, limit: 1 << 20, segmentLimit: 4).map(\.count) == [4, 4, 2])
    }

    /// A tensor-parallel prefill rank writes a head's rows, one run per
    /// slot: 40 000 places in one write land, and it is counted once.
    @Test("a write of more places than one part's header holds lands whole over a real lane")
    func manySegments() async throws {
        let target = TransferTarget(regions: RegionTable(owner: "rows", epoch: 1))
        let region = target.regions.register(length: 40_000 * 16)
        var services = RPCServices()
        TransferService.register(into: &services, target: target)
        var configuration = RPCConfiguration(nodeName: "rows")
        configuration.keepaliveInterval = nil
        let server = try await RPCServer.bind(.tcp(host: "127.0.0.1", port: 0), services: services, configuration: configuration)
        let rows = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            var sender = RPCConfiguration(nodeName: "sender")
            sender.keepaliveInterval = nil
            try await TCPTransport.withTransport(to: server.localAddress, lanes: 2, configuration: sender) { transport in
                let runs = (0..<40_000).map { (offset: $0 * 16, count: 1) }
                try await transport.write(.scattered(ByteBuffer(bytes: rows), to: region.descriptor, runs: runs, immediate: 5))
            }
        }
        #expect(target.counters.count(5) == 1)
        #expect(try (0..<40_000).allSatisfy { try region.read(offset: $0 * 16, count: 1) == [rows[$0]] })
    }
}
