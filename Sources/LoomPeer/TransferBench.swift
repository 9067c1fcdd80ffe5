import Foundation
import LoomTransfer
import LoomWire

public struct TransferBenchOptions: Sendable {
    public enum Backend: Sendable {
        /// Striped over `lanes` TCP connections to the server's address.
        case tcp(lanes: Int)
        /// Into the server's /dev/shm region, committed through a futex
        /// doorbell that its unix socket sets up.
        case shm(socketPath: String)
        /// One-sided writes through a libfabric endpoint of `provider` bound
        /// to `bind` (an address of this host), then `pings` 64-byte
        /// write/answer round trips for the one-way latency.
        case fabric(provider: String, bind: String, pings: Int)

        public var name: String {
            switch self {
            case .tcp: "tcp"
            case .shm: "shm"
            case .fabric: "fabric"
            }
        }
    }

    public var backend: Backend
    /// The peer server's RPC address (tcp): where `tcp` lanes connect and
    /// where a `fabric` writer attaches.
    public var server: RPCAddress
    /// The server's region for this backend; it must hold `totalBytes`.
    public var destination: RegionDescriptor
    /// Timed runs, after one untimed; the median is reported.
    public var runs = 5

    public init(backend: Backend, server: RPCAddress, destination: RegionDescriptor) {
        self.backend = backend
        self.server = server
        self.destination = destination
    }
}

public struct TransferBenchResult: Sendable {
    public struct Latency: Sendable {
        /// The provider libfabric picked (the request may name several).
        public var provider: String
        public var p50OneWayMicroseconds: Double
        public var p99OneWayMicroseconds: Double
    }

    public var backend: String
    public var bytes: Int
    public var pageBytes: Int
    /// Median, slowest and fastest run.
    public var gbytesPerSecond: Double
    public var minimum: Double
    public var maximum: Double
    /// A memcpy of the same bytes in this process: the ceiling for `shm`.
    public var memcpyGBytesPerSecond: Double
    /// Only for `fabric`.
    public var latency: Latency?

    /// One line; the field names are what scripts and BENCHMARKS.md use.
    public func json() -> String {
        let latency = latency.map {
            String(format: ",\"provider\":\"%@\",\"write_imm_64b_p50_one_way_us\":%.1f,\"write_imm_64b_p99_one_way_us\":%.1f",
                   $0.provider, $0.p50OneWayMicroseconds, $0.p99OneWayMicroseconds)
        } ?? ""
        return String(format: "{\"bench\":\"transfer\",\"backend\":\"%@\",\"bytes\":%d,\"page_bytes\":%d,\"gbytes_per_s\":%.3f,\"min\":%.3f,\"max\":%.3f,\"memcpy_gbytes_per_s\":%.3f%@}",
                      backend, bytes, pageBytes, gbytesPerSecond, minimum, maximum, memcpyGBytesPerSecond, latency)
    }

    public func table() -> String {
        func rate(_ value: Double) -> String { String(format: "%10.3f", value) }
        var lines = [
            "\(backend) backend, \(bytes >> 20) MiB in \(pageBytes >> 10) KiB pages",
            "  median            \(rate(gbytesPerSecond)) GB/s (runs \(String(format: "%.3f", minimum))–\(String(format: "%.3f", maximum)))",
            "  memcpy, same bytes\(rate(memcpyGBytesPerSecond)) GB/s",
        ]
        if let latency {
            lines.append("64-byte write with immediate, one way (\(latency.provider))")
            lines.append("  p50               \(String(format: "%10.1f", latency.p50OneWayMicroseconds)) µs")
            lines.append("  p99               \(String(format: "%10.1f", latency.p99OneWayMicroseconds)) µs")
        }
        return lines.joined(separator: "\n")
    }
}

/// 64 MiB in 64 KiB pages into a peer server's region, median of runs, next
/// to a memcpy of the same 64 MiB measured in the same process.
public enum TransferBench {
    public static let totalBytes = 64 << 20
    public static let pageBytes = 64 << 10

    public static func run(_ options: TransferBenchOptions, progress: @Sendable (String) -> Void = { _ in }) async throws -> TransferBenchResult {
        precondition(options.runs >= 1, "validated by the caller")
        let remote = options.destination
        guard remote.length >= totalBytes else {
            throw TransferError(.invalidRequest, "the server's \(options.backend.name) region holds \(remote.length) bytes; the bench writes \(totalBytes): start the server with --region-bytes \(totalBytes) or more")
        }
        let source = RegionTable(owner: "bench", epoch: 1).register(length: totalBytes)
        try source.fill(offset: 0, with: [UInt8](repeating: 0x5A, count: totalBytes))
        func measure(_ transport: any TransferTransport) async throws -> [Double] {
            try await timedWrites(from: source, to: remote, runs: options.runs, over: transport, progress: progress)
        }
        let configuration = RPCConfiguration.bench("bench")
        progress("transfer: \(options.backend.name), \(totalBytes >> 20) MiB in \(pageBytes >> 10) KiB pages, 1 warm-up and \(options.runs) timed runs")
        var latency: TransferBenchResult.Latency?
        let rates: [Double]
        switch options.backend {
        case .tcp(let lanes):
            rates = try await TCPTransport.withTransport(to: options.server, lanes: lanes, configuration: configuration) { try await measure($0) }
        case .shm(let socketPath):
            rates = try await ShmTransport.withTransport(to: .unix(path: socketPath), configuration: configuration) { try await measure($0) }
        case .fabric(let provider, let bind, let pings):
            let endpoint = try FabricEndpoint(provider: provider, node: bind)
            defer { endpoint.close() }
            rates = try await FabricTransport.withTransport(to: options.server, endpoint: endpoint, configuration: configuration) { try await measure($0) }
            progress("transfer: \(pings) fabric write/answer round trips")
            let (p50, p99) = try await FabricLatencyBench(server: options.server, endpoint: endpoint, bind: bind, remote: remote).run(count: pings)
            latency = .init(provider: endpoint.capabilities.provider, p50OneWayMicroseconds: p50, p99OneWayMicroseconds: p99)
        }
        let copies = try memcpyRates(of: source, runs: options.runs)
        return TransferBenchResult(
            backend: options.backend.name, bytes: totalBytes, pageBytes: pageBytes,
            gbytesPerSecond: rates[rates.count / 2], minimum: rates.first!, maximum: rates.last!,
            memcpyGBytesPerSecond: copies[copies.count / 2], latency: latency)
    }

    /// One untimed write of every page, then `runs` timed ones; sorted rates in GB/s.
    private static func timedWrites(
        from source: RegisteredRegion, to remote: RegionDescriptor, runs: Int,
        over transport: any TransferTransport, progress: (String) -> Void
    ) async throws -> [Double] {
        let pages = Array(0..<(totalBytes / pageBytes))
        let clock = ContinuousClock()
        var rates: [Double] = []
        for run in 0...runs {
            let operation = try WriteOperation.paged(
                from: source, pages: pages, stride: pageBytes, to: remote, pages: pages, stride: pageBytes, pageLength: pageBytes, immediate: 1)
            let start = clock.now
            try await transport.write(operation)
            guard run > 0 else { continue }
            rates.append(Double(totalBytes) / seconds(clock.now - start) / 1e9)
            progress("transfer: run \(run)/\(runs) \(String(format: "%.3f", rates.last!)) GB/s")
        }
        return rates.sorted()
    }

    private static func memcpyRates(of source: RegisteredRegion, runs: Int) throws -> [Double] {
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: totalBytes, alignment: 64)
        defer { destination.deallocate() }
        let bytes = try source.read(offset: 0, count: totalBytes)
        let clock = ContinuousClock()
        var rates: [Double] = []
        for _ in 0..<runs {
            let start = clock.now
            bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
            rates.append(Double(totalBytes) / seconds(clock.now - start) / 1e9)
        }
        return rates.sorted()
    }
}
