import Foundation
import LoomTransfer
import LoomWire
import NIOCore

/// `bench-rpc`: sequential small unary round trips, then 1 MiB attachments.
func benchRPC() async throws {
    let address = RPCAddress.tcp(host: argument("host", "127.0.0.1"), port: Int(argument("port", "0"))!)
    let calls = Int(argument("calls", "5000"))!
    var config = configuration("bench")
    config.keepaliveInterval = nil
    let result = try await RPCConnection.withConnection(to: address, configuration: config) { connection in
        let small = RPCMessage(message: ByteBuffer(string: "0123456789abcdef0123456789abcdef"))
        for _ in 0..<500 { _ = try await connection.unary(method: PeerMethods.echo, small) }
        var rtts: [Double] = []
        rtts.reserveCapacity(calls)
        let clock = ContinuousClock()
        for _ in 0..<calls {
            let start = clock.now
            _ = try await connection.unary(method: PeerMethods.echo, small)
            rtts.append(Double((clock.now - start).components.attoseconds) / 1e12 + Double((clock.now - start).components.seconds) * 1e6)
        }
        rtts.sort()
        let big = RPCMessage(attachment: ByteBuffer(repeating: 7, count: 1 << 20))
        for _ in 0..<20 { _ = try await connection.unary(method: PeerMethods.sink, big) }
        let count = 200
        let start = clock.now
        for _ in 0..<count { _ = try await connection.unary(method: PeerMethods.sink, big) }
        let seconds = seconds(clock.now - start)
        return (rtts[rtts.count / 2], rtts[rtts.count * 99 / 100], Double(count << 20) / seconds / 1e9)
    }
    emit(String(format: "{\"bench\":\"rpc\",\"calls\":%d,\"p50_rtt_us\":%.1f,\"p99_rtt_us\":%.1f,\"attachment_1mib_gbytes_per_s\":%.3f}", calls, result.0, result.1, result.2))
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// `bench-transfer --backend tcp|shm`: 64 MiB in 64 KiB pages, median of runs,
/// next to a memcpy of the same 64 MiB measured in the same process.
func benchTransfer() async throws {
    let backend = argument("backend", "tcp")
    let hexes = argument("descriptor", "").split(separator: ",")
    let descriptorHex = backend == "fabric" ? argument("fabric-descriptor", "") : backend == "shm" ? String(hexes.last!) : String(hexes.first!)
    let remote = try RegionDescriptor(serialized: hexBytes(descriptorHex))
    let total = 64 << 20, page = 64 << 10, pages = total / page
    precondition(remote.length >= total, "server region must hold 64 MiB")
    let source = RegionTable(owner: "bench", epoch: 1).register(length: total)
    try source.fill(offset: 0, with: [UInt8](repeating: 0x5A, count: total))
    let runs = Int(argument("runs", "5"))!
    var config = configuration("bench")
    config.keepaliveInterval = nil
    let clock = ContinuousClock()
    func measure(_ transport: any TransferTransport) async throws -> [Double] {
        var rates: [Double] = []
        for run in 0...runs {
            let operation = try WriteOperation.paged(from: source, pages: Array(0..<pages), stride: page, to: remote, pages: Array(0..<pages), stride: page, pageLength: page, immediate: 1)
            let start = clock.now
            try await transport.write(operation)
            if run > 0 { rates.append(Double(total) / seconds(clock.now - start) / 1e9) }  // run 0 warms up
        }
        return rates.sorted()
    }
    let rates: [Double]
    var latency = ""
    let server = RPCAddress.tcp(host: argument("host", "127.0.0.1"), port: Int(argument("port", "0"))!)
    if backend == "fabric" {
        let endpoint = try FabricEndpoint(provider: argument("provider", "tcp;ofi_rxm"), node: argument("bind", "127.0.0.1"))
        defer { endpoint.close() }
        rates = try await FabricTransport.withTransport(to: server, endpoint: endpoint, configuration: config) { try await measure($0) }
        let (p50, p99) = try await benchFabricLatency(server: server, endpoint: endpoint, count: Int(argument("pings", "10000"))!)
        latency = String(format: ",\"provider\":\"%@\",\"write_imm_64b_p50_one_way_us\":%.1f,\"write_imm_64b_p99_one_way_us\":%.1f", endpoint.capabilities.provider, p50, p99)
    } else if backend == "shm" {
        rates = try await ShmTransport.withTransport(to: .unix(path: argument("unix", "")), configuration: config) { try await measure($0) }
    } else {
        rates = try await TCPTransport.withTransport(to: .tcp(host: argument("host", "127.0.0.1"), port: Int(argument("port", "0"))!), lanes: Int(argument("lanes", "4"))!, configuration: config) { try await measure($0) }
    }
    let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 64)
    defer { destination.deallocate() }
    var copies: [Double] = []
    let sourceBytes = try source.read(offset: 0, count: total)
    for _ in 0..<runs {
        let start = clock.now
        sourceBytes.withUnsafeBytes { destination.copyMemory(from: $0) }
        copies.append(Double(total) / seconds(clock.now - start) / 1e9)
    }
    copies.sort()
    emit(String(format: "{\"bench\":\"transfer\",\"backend\":\"%@\",\"bytes\":%d,\"page_bytes\":%d,\"gbytes_per_s\":%.3f,\"min\":%.3f,\"max\":%.3f,\"memcpy_gbytes_per_s\":%.3f%@}",
                backend, total, page, rates[rates.count / 2], rates.first!, rates.last!, copies[copies.count / 2], latency))
}
