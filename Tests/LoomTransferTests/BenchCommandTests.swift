import Foundation
import LoomTesting
import Testing

/// `loom bench rpc|transfer` end to end: the built `loom` starts its own
/// peer server as a second process (or is pointed at one with --connect),
/// and prints one JSON line whose field names scripts and BENCHMARKS.md
/// rely on. Counts are small: this checks the plumbing, not the speed.
/// Here rather than beside the other `loom` CLI tests (LoomRealModelTests)
/// because scripts/test.sh runs network suites apart from the CPU-heavy
/// ones, whose load would starve these processes' event loops.
@Suite("loom bench rpc and transfer", .serialized)
struct BenchCommandTests {
    struct RPCLine: Decodable {
        var bench: String
        var calls: Int
        var p50_rtt_us: Double
        var p99_rtt_us: Double
        var attachment_1mib_gbytes_per_s: Double
    }

    struct TransferLine: Decodable {
        var bench: String
        var backend: String
        var bytes: Int
        var page_bytes: Int
        var gbytes_per_s: Double
        var min: Double
        var max: Double
        var memcpy_gbytes_per_s: Double
    }

    @Test("bench rpc --json reports positive round trips and attachment throughput")
    func rpc() async throws {
        let output = try await LoomRun.start(["bench", "rpc", "--json", "--calls", "200", "--warmup-calls", "20", "--attachment-calls", "10"]).finish()
        let line = try output.jsonLine(RPCLine.self)
        #expect(line.bench == "rpc" && line.calls == 200)
        #expect(line.p50_rtt_us > 0 && line.p99_rtt_us >= line.p50_rtt_us)
        #expect(line.attachment_1mib_gbytes_per_s > 0)
    }

    @Test("bench transfer --json moves 64 MiB", arguments: ["tcp", "shm"])
    func transfer(_ backend: String) async throws {
        let output = try await LoomRun.start(["bench", "transfer", "--backend", backend, "--json", "--runs", "1"]).finish()
        let line = try output.jsonLine(TransferLine.self)
        #expect(line.bench == "transfer" && line.backend == backend)
        #expect(line.bytes == 64 << 20 && line.page_bytes == 64 << 10)
        #expect(line.gbytes_per_s > 0 && line.min > 0 && line.max > 0 && line.memcpy_gbytes_per_s > 0)
    }

    @Test("--connect finds a running server's regions, and says what it lacks")
    func connect() async throws {
        let server = try LoomRun.start(["bench", "peer-server", "--port", "0"])
        defer { server.stop() }
        let listening = try await server.awaitLine("LISTENING")
        let address = String(listening.split(separator: " ")[1])

        let tcp = try await LoomRun.start(["bench", "transfer", "--connect", address, "--json", "--runs", "1"]).finish()
        #expect(try tcp.jsonLine(TransferLine.self).bytes == 64 << 20)

        let shm = try await LoomRun.start(["bench", "transfer", "--backend", "shm", "--connect", address]).finish(expectSuccess: false)
        #expect(shm.status != 0)
        #expect(shm.stderr.contains("start it with --shm"), "\(shm.stderr)")
    }

    @Test("an unknown fabric provider is an error that names it and says how to list the real ones")
    func unknownProvider() async throws {
        let output = try await LoomRun.start(["bench", "transfer", "--backend", "fabric", "--provider", "no-such-provider"]).finish(expectSuccess: false)
        #expect(output.status != 0)
        #expect(output.stderr.contains("no-such-provider") && output.stderr.contains("fi_info -l"), "\(output.stderr)")
    }
}

/// One run of the built `loom`, its output in files so that neither pipe
/// can fill up while the test waits, and waited for by polling, without
/// blocking one of the few threads the concurrent network tests run on.
struct LoomRun {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String

        /// The whole of stdout, which must be exactly one JSON line.
        func jsonLine<T: Decodable>(_ type: T.Type) throws -> T {
            let lines = stdout.split(separator: "\n")
            try #require(status == 0 && lines.count == 1, "status \(status), stdout:\n\(stdout)\nstderr:\n\(stderr)")
            return try JSONDecoder().decode(T.self, from: Data(lines[0].utf8))
        }
    }

    let process = Process()
    let stdout = temporaryPath("loom-bench.out")
    let stderr = temporaryPath("loom-bench.err")

    static func start(_ arguments: [String]) throws -> LoomRun {
        let run = LoomRun()
        for path in [run.stdout, run.stderr] { FileManager.default.createFile(atPath: path, contents: nil) }
        run.process.executableURL = BuiltExecutable.url("loom")
        run.process.arguments = arguments
        run.process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: run.stdout))
        run.process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: run.stderr))
        try run.process.run()
        return run
    }

    /// Waits (at most `seconds`) for the process to exit.
    func finish(seconds: Int = 120, expectSuccess: Bool = true) async throws -> Output {
        for _ in 0..<(seconds * 20) where process.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else {
            stop()
            throw TestFailure("loom did not finish within \(seconds)s (a hang); stderr:\n\(read(stderr))")
        }
        let output = Output(status: process.terminationStatus, stdout: read(stdout), stderr: read(stderr))
        if expectSuccess { #expect(output.status == 0, "stderr:\n\(output.stderr)") }
        return output
    }

    /// Polls stdout (at most `seconds`) for a line starting with `prefix`.
    func awaitLine(_ prefix: String, seconds: Int = 60) async throws -> String {
        for _ in 0..<(seconds * 20) where process.isRunning {
            if let line = read(stdout).split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            try await Task.sleep(for: .milliseconds(50))
        }
        let state = process.isRunning ? "still running after \(seconds)s" : "exited with status \(process.terminationStatus)"
        throw TestFailure("no line starting \(prefix) from loom (\(state)); stderr:\n\(read(stderr))")
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    private func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
