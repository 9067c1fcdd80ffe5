import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomTesting
import Testing

struct ClusterDidNotStart: Error, CustomStringConvertible {
    var description: String
}

/// One `loom router` or `loom worker` child process. Its first stdout line
/// says where it listens; everything it writes also goes to a log file that
/// a failing test prints.
final class LoomChild: @unchecked Sendable {
    // `@unchecked`: `Process` is not Sendable; a child is started in `init`
    // and afterwards only signalled and waited on, from the test's task.
    let name: String
    let process = Process()
    let log: URL
    private(set) var announcement = ""

    init(_ name: String, _ arguments: [String], prefix: [String] = []) throws {
        self.name = name
        log = URL(fileURLWithPath: temporaryPath("loom-\(name).log"))
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let stdout = Pipe()
        if prefix.isEmpty {
            process.executableURL = BuiltExecutable.url("loom")
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [BuiltExecutable.url("loom").path] + arguments
        }
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let seen = readFirstLine(of: stdout.fileHandleForReading)
        announcement = seen
        guard !seen.isEmpty else {
            throw ClusterDidNotStart(description: "\(name) exited before announcing itself:\n\(tail)")
        }
    }

    var tail: String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(20).joined(separator: "\n")
    }

    /// `host:port` printed after `label`.
    func address(after label: String) -> String? {
        guard let range = announcement.range(of: label + #"[0-9.]+:\d+"#, options: .regularExpression) else { return nil }
        return String(announcement[range].dropFirst(label.count))
    }

    func kill() {
        process.terminate()  // SIGTERM
        process.waitUntilExit()
    }

    func crash() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { if process.isRunning { crash() } }
}

/// A router and workers on loopback, each its own process, on ports the
/// kernel picks.
final class ClusterHarness: @unchecked Sendable {
    // `@unchecked`: mutated only by the test that owns it, one call at a time.
    let model: String
    var router: LoomChild!
    var workers: [String: LoomChild] = [:]
    var httpURL: URL!
    var rpcAddress = ""

    init(model: String) {
        self.model = model
    }

    func startRouter(_ extra: [String] = [], rpcPort: Int = 0, httpPort: Int = 0) throws {
        router = try LoomChild("router", ["router", "--model", model, "--port", "\(httpPort)", "--rpc-port", "\(rpcPort)",
                                          "--heartbeat-interval-ms", "100", "--heartbeat-timeout-ms", "1500"] + extra)
        guard let http = router.address(after: "http://"), let rpc = router.address(after: "rpc=") else {
            throw ClusterDidNotStart(description: "router announced no addresses: \(router.announcement)")
        }
        httpURL = URL(string: "http://\(http)")
        rpcAddress = rpc
    }

    @discardableResult
    func startWorker(_ name: String, role: String, extra: [String] = [], prefix: [String] = []) throws -> LoomChild {
        let child = try LoomChild(name, ["worker", "--model", model, "--name", name, "--role", role, "--port", "0",
                                         "--router", rpcAddress, "--threads", "1", "--kv-blocks", "512", "--max-running", "8"] + extra,
                                  prefix: prefix)
        workers[name] = child
        return child
    }

    /// A `loom kvstore` child registered with the router, and the
    /// `host:port` it listens on; stopped with the workers.
    func startStore(_ name: String, dramMiB: Int, extra: [String] = [], prefix: [String] = []) throws -> (LoomChild, String) {
        let child = try LoomChild(name, ["kvstore", "--model", model, "--name", name, "--router", rpcAddress, "--dram-mib", "\(dramMiB)"] + extra,
                                  prefix: prefix)
        workers[name] = child
        guard let address = child.address(after: "listening on ") else {
            throw ClusterDidNotStart(description: "\(name) announced no address: \(child.announcement)")
        }
        return (child, address)
    }

    func stopAll() {
        for worker in workers.values where worker.process.isRunning { worker.kill() }
        if let router, router.process.isRunning { router.kill() }
    }

    var logs: String {
        ([router].compactMap { $0 } + workers.values).map { "--- \($0.name)\n\($0.tail)" }.joined(separator: "\n")
    }

    // MARK: HTTP

    func post(_ path: String, _ body: [String: Any], apiKey: String? = nil) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: httpURL.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let apiKey { request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization") }
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        request.timeoutInterval = 300
        let (data, response) = try await URLSession.shared.data(for: request)
        let object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? ["raw": String(decoding: data, as: UTF8.self)]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
    }

    /// A chat completion's outcome, as a value that can cross tasks.
    struct Completion: Sendable {
        var status: Int
        var content: String?
        var raw: String
    }

    func complete(_ body: [String: Any]) async throws -> Completion {
        let (status, object) = try await post("v1/chat/completions", body)
        let raw = (try? JSONSerialization.data(withJSONObject: object)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let message = (object["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any]
        return Completion(status: status, content: message?["content"] as? String, raw: raw)
    }

    func status() async throws -> [String: Any] {
        let (data, _) = try await URLSession.shared.data(from: httpURL.appendingPathComponent("admin/status"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// What `loomctl cache --json` prints.
    func cache() async throws -> [String: Any] {
        let (data, _) = try await URLSession.shared.data(from: httpURL.appendingPathComponent("admin/cache"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The `tier` row of a cache report.
    func tier(_ name: String, in cache: [String: Any]) -> [String: Any]? {
        (cache["tiers"] as? [[String: Any]])?.first { $0["tier"] as? String == name }
    }

    func worker(_ name: String, in status: [String: Any]) -> [String: Any]? {
        (status["workers"] as? [[String: Any]])?.first { $0["id"] as? String == name }
    }

    /// Polls the status until `condition` holds (heartbeats are 100 ms
    /// apart), or fails after `limit`.
    func waitForStatus(_ what: String, limit: Duration = .seconds(60), _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + limit
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            if let status = try? await status() {
                last = status
                if condition(status) { return status }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for \(what); last status: \(last)\n\(logs)")
        throw ClusterDidNotStart(description: "timed out waiting for \(what)")
    }

    func waitUntilHealthy(_ names: [String]) async throws {
        _ = try await waitForStatus("workers \(names) healthy") { status in
            names.allSatisfy { worker($0, in: status)?["healthy"] as? Bool == true }
        }
    }

    /// A router that leaves prefill to the decode workers, two of them, and
    /// four chat requests under way, returned once decode-0 is decoding
    /// some: the start of a test that takes decode-0 away mid-stream.
    static let fourRequestsTokens = 64

    func fourRequestsWithDecode0Decoding() async throws -> (LoomChild, [String], [Task<Completion, Error>]) {
        try startRouter(["--disaggregation-threshold", "100000"])
        let decode0 = try startWorker("decode-0", role: "decode")
        try startWorker("decode-1", role: "decode")
        try await waitUntilHealthy(["decode-0", "decode-1"])
        // Answers longer than the token budget: a short one could end (at
        // its EOS) between the status seen and the kill, leaving nothing
        // on decode-0 to move.
        let questions = ["Write a long story about a river in France.", "Write a long story about a city in Peru.",
                         "Write a long story about a lake in Kenya.", "Write a long story about a mountain in Chile."]
        let requests = questions.map { question in
            Task { try await self.complete(body(chat(question), maxTokens: Self.fourRequestsTokens)) }
        }
        _ = try await waitForStatus("decode-0 decoding") { s in
            let w = worker("decode-0", in: s)
            return (w?["running"] as? Int ?? 0) > 0 && (w?["computed_tokens"] as? Int ?? 0) > 0
        }
        return (decode0, questions, requests)
    }
}
