import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

@Suite("Transfer tcp backend on loopback")
struct TCPTransportTests {
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
            var sender = RPCConfiguration(nodeName: "sender")
            sender.keepaliveInterval = nil
            try await TCPTransport.withTransport(to: server.localAddress, lanes: 3, configuration: sender) { transport in
                let pages = Array(0..<64)
                try await transport.write(.paged(from: big, pages: pages, stride: 65536, to: region.descriptor, pages: pages.reversed(), stride: 65536, pageLength: 65536, immediate: 2))
            }
        }
        #expect(target.counters.count(2) == 1)
        #expect(try region.read(offset: 63 * 65536, count: 65536) == big.read(offset: 0, count: 65536))
    }
}
