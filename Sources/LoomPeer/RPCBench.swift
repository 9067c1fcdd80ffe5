import Foundation
import LoomWire
import NIOCore

public struct RPCBenchOptions: Sendable {
    /// A peer server (`loom-peer serve`, `loom bench peer-server`).
    public var server: RPCAddress
    /// Timed 32-byte round trips, one at a time.
    public var calls = 5000
    /// Untimed round trips first, so connection setup and lazy allocations
    /// stay out of the percentiles.
    public var warmupCalls = 500
    /// Timed 1 MiB attachments, one at a time, after a tenth as many untimed.
    public var attachmentCalls = 200

    public init(server: RPCAddress) {
        self.server = server
    }
}

public struct RPCBenchResult: Sendable {
    public var calls: Int
    public var p50RoundTripMicroseconds: Double
    public var p99RoundTripMicroseconds: Double
    public var attachmentGBytesPerSecond: Double

    /// One line; the field names are what scripts and BENCHMARKS.md use.
    public func json() -> String {
        String(format: "{\"bench\":\"rpc\",\"calls\":%d,\"p50_rtt_us\":%.1f,\"p99_rtt_us\":%.1f,\"attachment_1mib_gbytes_per_s\":%.3f}",
               calls, p50RoundTripMicroseconds, p99RoundTripMicroseconds, attachmentGBytesPerSecond)
    }

    public func table() -> String {
        """
        RPC round trip, 32-byte echo (\(calls) calls)
          p50                 \(String(format: "%10.1f", p50RoundTripMicroseconds)) µs
          p99                 \(String(format: "%10.1f", p99RoundTripMicroseconds)) µs
        1 MiB attachments     \(String(format: "%10.3f", attachmentGBytesPerSecond)) GB/s
        """
    }
}

/// Sequential small unary round trips, then 1 MiB attachments, on one
/// connection: the latency and bandwidth one caller sees.
public enum RPCBench {
    public static func run(_ options: RPCBenchOptions, progress: @Sendable (String) -> Void = { _ in }) async throws -> RPCBenchResult {
        precondition(options.calls >= 1 && options.attachmentCalls >= 1, "validated by the caller")
        return try await RPCConnection.withConnection(to: options.server, configuration: .bench("bench")) { connection in
            // The caller a latency-minded user would write: one that runs
            // on the connection's event loop.
            try await withTaskExecutorPreference(connection.executor) { try await calls(on: connection, options, progress) }
        }
    }

    private static func calls(on connection: RPCConnection, _ options: RPCBenchOptions, _ progress: @Sendable (String) -> Void) async throws -> RPCBenchResult {
        let small = RPCMessage(message: ByteBuffer(string: "0123456789abcdef0123456789abcdef"))
        progress("rpc: \(options.warmupCalls) warm-up and \(options.calls) timed round trips to \(options.server)")
        for _ in 0..<options.warmupCalls { _ = try await connection.unary(method: PeerMethods.echo, small) }
        var rtts: [Double] = []
        rtts.reserveCapacity(options.calls)
        let clock = ContinuousClock()
        for _ in 0..<options.calls {
            let start = clock.now
            _ = try await connection.unary(method: PeerMethods.echo, small)
            rtts.append(seconds(clock.now - start) * 1e6)
        }
        rtts.sort()
        progress("rpc: \(options.attachmentCalls) calls with a 1 MiB attachment")
        let big = RPCMessage(attachment: ByteBuffer(repeating: 7, count: 1 << 20))
        for _ in 0..<max(1, options.attachmentCalls / 10) { _ = try await connection.unary(method: PeerMethods.sink, big) }
        let start = clock.now
        for _ in 0..<options.attachmentCalls { _ = try await connection.unary(method: PeerMethods.sink, big) }
        let elapsed = seconds(clock.now - start)
        return RPCBenchResult(
            calls: options.calls, p50RoundTripMicroseconds: rtts[rtts.count / 2], p99RoundTripMicroseconds: rtts[rtts.count * 99 / 100],
            attachmentGBytesPerSecond: Double(options.attachmentCalls << 20) / elapsed / 1e9)
    }
}
