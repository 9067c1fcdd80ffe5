import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time sequential unary echo calls against `grpc-echo serve`.")

    @Option(help: "Host the server listens on.")
    var host = "127.0.0.1"

    @Option(help: "The server's port.")
    var port: Int

    @Option(help: "Timed calls, after 500 untimed warm-up calls.")
    var calls = 5000

    @Flag(help: "Print the result as one JSON line instead of a sentence.")
    var json = false

    @OptionGroup var executor: ExecutorOption

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1...65535, got \(port)") }
        guard calls >= 100 else { throw ValidationError("--calls must be at least 100 for a p99, got \(calls)") }
    }

    func run() async throws {
        executor.install()
        // The same 32 bytes `loom bench rpc` echoes.
        let payload = Array("0123456789abcdef0123456789abcdef".utf8)
        let transport: HTTP2ClientTransport.Posix = try .http2NIOPosix(
            target: .ipv4(address: host, port: port), transportSecurity: .plaintext)
        let rtts = try await withGRPCClient(transport: transport) { client in
            try await measure(client, payload: payload)
        }
        let p50 = rtts[rtts.count / 2], p99 = rtts[rtts.count * 99 / 100]
        let line = json
            ? String(format: "{\"bench\":\"grpc\",\"calls\":%d,\"p50_rtt_us\":%.1f,\"p99_rtt_us\":%.1f}", calls, p50, p99)
            : String(format: "grpc-swift-2 unary echo, %d calls: p50 %.1f µs, p99 %.1f µs round trip", calls, p50, p99)
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Sorted round-trip times in microseconds.
    private func measure(_ client: GRPCClient<HTTP2ClientTransport.Posix>, payload: [UInt8]) async throws -> [Double] {
        let request = ClientRequest(message: payload)
        @Sendable func call() async throws {
            let reply = try await client.unary(
                request: request, descriptor: Echo.get,
                serializer: RawBytesSerializer(), deserializer: RawBytesDeserializer(),
                options: .defaults
            ) { try $0.message }
            // A wrong echo would make the timing meaningless, so stop rather than report it.
            guard reply == payload else { throw ValidationError("echo returned \(reply.count) different bytes") }
        }
        progress("warming up: 500 calls")
        for _ in 0..<500 { try await call() }
        progress("timing \(calls) calls")
        var rtts: [Double] = []
        rtts.reserveCapacity(calls)
        let clock = ContinuousClock()
        for _ in 0..<calls {
            let start = clock.now
            try await call()
            let elapsed = clock.now - start
            rtts.append(Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12)
        }
        return rtts.sorted()
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("grpc-echo: \(line)\n".utf8))
    }
}
