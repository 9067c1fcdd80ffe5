import LoomTransfer
import LoomWire
import NIOCore

/// The latency half of the fabric transfer bench: 64-byte writes with an
/// immediate, each answered by the server with one of its own (a ping-pong,
/// as fi_pingpong measures messages); half the round trip is the one-way
/// latency.
struct FabricLatencyBench {
    /// The peer server's RPC address and its fabric region.
    let server: RPCAddress
    let endpoint: FabricEndpoint
    /// This host's address on the fabric, where the server's answers land.
    let bind: String
    let remote: RegionDescriptor

    /// p50 and p99 one-way microseconds over `count` pings, the first tenth
    /// left out as warm-up.
    func run(count: Int) async throws -> (p50: Double, p99: Double) {
        precondition(count >= 1, "validated by the caller")
        let target = TransferTarget(regions: RegionTable(owner: "ping", epoch: 1))
        let fabric = try FabricTarget(endpoint: endpoint, target: target)
        let landing = try fabric.register(length: 64)
        var services = RPCServices()
        fabric.serve(into: &services)
        var configuration = RPCConfiguration.peer("ping")
        configuration.transferBackends = fabric.offers
        // The server attaches back to this one to send its answers.
        let pingServer = try await RPCServer.bind(.tcp(host: bind, port: 0), services: services, configuration: configuration)
        let serving = Task { try await pingServer.run() }
        defer { serving.cancel() }
        guard case .tcp(_, let port) = pingServer.localAddress else { preconditionFailure("bound to tcp") }
        let ask = "\(bind) \(port) \(try landing.descriptor.hex()) \(count)"
        let pong = Task { [server] in
            try await RPCConnection.withConnection(to: server, configuration: .peer("ping")) { connection in
                _ = try await connection.unary(method: PeerMethods.pong, RPCMessage(message: ByteBuffer(string: ask)), timeout: .seconds(600))
            }
        }
        let halves: [Double]
        do {
            halves = try await pingPong(count: count, answers: target)
        } catch {
            pong.cancel()
            throw error
        }
        try await pong.value
        let measured = halves.dropFirst(count / 10).sorted()
        return (measured[measured.count / 2], measured[measured.count * 99 / 100])
    }

    private func pingPong(count: Int, answers target: TransferTarget) async throws -> [Double] {
        let source = RegionTable(owner: "ping", epoch: 1).register(length: 64)
        let clock = ContinuousClock()
        var halves: [Double] = []
        halves.reserveCapacity(count)
        try await FabricTransport.withTransport(to: server, endpoint: endpoint, configuration: .peer("ping")) { transport in
            for i in 1...count {
                let start = clock.now
                try await transport.write(.single(from: source, offset: 0, count: 64, to: remote, offset: 0, immediate: pingBase + UInt32(i)))
                try await target.counters.wait(for: UInt32(i), count: 1, timeout: .seconds(30))
                target.counters.reset(UInt32(i))
                halves.append(seconds(clock.now - start) * 1e6 / 2)
            }
        }
        return halves
    }
}
