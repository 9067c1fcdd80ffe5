import ArgumentParser
import Foundation
import LoomBench

/// Load generator for any OpenAI-compatible server, so Loom and
/// llama-server are measured by the same client with the same prompts.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Send streaming chat requests to an OpenAI-compatible server and report TTFT, ITL, E2E and tok/s.",
        discussion: """
            Closed loop with --concurrency (default 16), or open loop with Poisson arrivals at --rate. \
            --workload multi-round --users U --rounds R: U conversations of R questions, every one sent with the conversation so far, \
            round by round (every user's first question, then every user's second, ...), --concurrency at a time (default 4).
            """)

    @Option(name: .long, help: "Server base URL, e.g. http://127.0.0.1:8000 (without /v1).")
    var url: String

    @Option(name: .long, help: "Model id to send (default: the first id from GET /v1/models).")
    var model: String?

    @Option(name: .long, help: "The prompts to send.")
    var workload: WorkloadKind = .plain

    @Option(name: .long, help: "Requests to send in all (multi-round: users × rounds).")
    var requests = 64

    @Option(name: .long, help: "multi-round: conversations (default 16).")
    var users: Int?

    @Option(name: .long, help: "multi-round: questions per conversation (default 4).")
    var rounds: Int?

    @Option(name: .long, help: "Clients sending back to back (closed loop; default 16).")
    var concurrency: Int?

    @Option(name: .long, help: "Requests per second with Poisson arrivals (open loop), instead of --concurrency.")
    var rate: Double?

    @Option(name: .long, help: "Tokens to generate per request (sent with ignore_eos so servers that honour it produce exactly this many).")
    var maxTokens = 64

    @Option(name: .long, help: "Seed for the prompts and the arrival times.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Seconds a request may take before it counts as failed.")
    var timeout = 300.0

    @Option(name: .long, help: "Sent as 'Authorization: Bearer <key>'.")
    var apiKey: String?

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ValidationError("--url must start with http:// or https://, e.g. http://127.0.0.1:8000")
        }
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
        guard concurrency == nil || rate == nil else {
            throw ValidationError("pass --concurrency (closed loop) or --rate (open loop), not both")
        }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate must be a positive number of requests per second") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
        guard timeout > 0 && timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
        if workload == .multiRound {
            guard rate == nil else { throw ValidationError("multi-round is a closed loop of --concurrency requests; leave out --rate") }
            guard (users ?? 16) >= 1, (rounds ?? 4) >= 1 else { throw ValidationError("--users and --rounds must be at least 1") }
        } else if users != nil || rounds != nil {
            throw ValidationError("--users and --rounds are for --workload multi-round")
        }
    }

    func run() async throws {
        var options = ServeBenchmarkOptions(
            target: ServerTarget(baseURL: url, apiKey: apiKey), model: model, workload: workload,
            requests: requests, shape: rate.map { .open(rate: $0) } ?? .closed(concurrency: concurrency ?? 16),
            maxTokens: maxTokens, seed: seed, timeout: .seconds(timeout))
        if workload == .multiRound {
            let (users, rounds) = (self.users ?? 16, self.rounds ?? 4)
            options.conversations = (users, rounds)
            options.requests = users * rounds
            options.shape = .closed(concurrency: concurrency ?? 4)
        }
        let isTerminal = isatty(STDERR_FILENO) == 1
        // A terminal gets one line redrawn in place; a log file gets a plain
        // line every few seconds instead of hundreds of redraws.
        let report = try await ServeBenchmark.run(
            options, progressInterval: isTerminal ? .milliseconds(250) : .seconds(5),
            onProgress: { progress in
                if isTerminal {
                    FileHandle.standardError.write(Data(("\r" + progress.line() + "\u{1B}[K").utf8))
                } else {
                    stderr(progress.line())
                }
            })
        if isTerminal { stderr("") }
        print(json ? try report.json() : report.table())
        // A run where nothing succeeded measured nothing; scripts must see that.
        if report.failures == report.requests { throw ExitCode.failure }
    }
}

extension WorkloadKind: ExpressibleByArgument {}
