import LoomWire
import NIOCore
import Testing
@testable import LoomTransfer

@Suite("Transfer shm backend")
struct ShmTransportTests {
    /// A peer whose region lives in /dev/shm and which serves commits on a
    /// Unix socket. The writer maps the same file separately, as another
    /// process on the host would.
    func withShmPeer<R: Sendable>(epoch: UInt64 = 1, _ body: @Sendable (TransferTarget, RegisteredRegion, RPCServer) async throws -> R) async throws -> R {
        let target = TransferTarget(regions: RegionTable(owner: "shm-\(UInt32.random(in: 0...UInt32.max))", epoch: epoch))
        let region = try SharedMemoryRegion.register(in: target.regions, length: 1 << 16)
        var services = RPCServices()
        TransferService.registerShared(into: &services, target: target)
        var configuration = RPCConfiguration(nodeName: target.regions.owner)
        configuration.keepaliveInterval = nil
        let server = try await RPCServer.bind(.unix(path: "/tmp/loom-shm-\(UInt64.random(in: 0...UInt64.max)).sock"), services: services, configuration: configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            return try await body(target, region, server)
        }
    }

    func sender() -> RPCConfiguration {
        var configuration = RPCConfiguration(nodeName: "writer")
        configuration.keepaliveInterval = nil
        return configuration
    }

    @Test("a descriptor of a deregistered region finds no mapping and is refused")
    func staleMapping() async throws {
        let source = RegionTable(owner: "w", epoch: 1).register(length: 64)
        try await withShmPeer { target, region, server in
            var gone = region.descriptor
            gone.epoch += 1  // a later incarnation would name a different file
            gone.backendKeys[SharedMemoryRegion.backendKey] = Array((String(decoding: gone.backendKeys[SharedMemoryRegion.backendKey]!, as: UTF8.self) + "-old").utf8)
            try await ShmTransport.withTransport(to: server.localAddress, configuration: sender()) { transport in
                do {
                    try await transport.write(.single(from: source, offset: 0, count: 8, to: gone, offset: 0, immediate: 1))
                    Issue.record("stale shm write accepted")
                } catch let error as TransferError {
                    #expect(error.code == .staleDescriptor)
                }
            }
            #expect(target.counters.count(1) == 0)
        }
    }
}
