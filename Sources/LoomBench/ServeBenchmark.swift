import AsyncHTTPClient

/// Everything one `loom bench serve` run needs, checked by the command.
public struct ServeBenchmarkOptions: Sendable {
    public var target: ServerTarget
    /// `nil` asks the server's `/v1/models`.
    public var model: String?
    public var workload: WorkloadKind
    public var requests: Int
    public var shape: LoadShape
    public var maxTokens: Int
    public var seed: UInt64
    public var timeout: Duration
    /// For `multi-round`: users in conversation at once, and the questions
    /// each asks.
    public var conversations: (users: Int, rounds: Int)?

    public init(
        target: ServerTarget, model: String?, workload: WorkloadKind, requests: Int, shape: LoadShape,
        maxTokens: Int, seed: UInt64, timeout: Duration
    ) {
        self.target = target
        self.model = model
        self.workload = workload
        self.requests = requests
        self.shape = shape
        self.maxTokens = maxTokens
        self.seed = seed
        self.timeout = timeout
    }
}

/// Wires the pieces together: one HTTP client for the run, shut down when
/// it ends whatever happens.
public enum ServeBenchmark {
    public static func run(
        _ options: ServeBenchmarkOptions, progressInterval: Duration,
        onProgress: @escaping @Sendable (RunProgress) -> Void
    ) async throws -> BenchReport {
        try await HTTPClient.withHTTPClient(configuration: httpConfiguration(options)) { http in
            let model: String
            if let name = options.model {
                model = name
            } else {
                model = try await options.target.firstModel(using: http, timeout: min(options.timeout, .seconds(30)))
            }
            let client = ChatStreamClient(
                http: http, target: options.target, model: model, maxTokens: options.maxTokens, timeout: options.timeout)
            if let (users, rounds) = options.conversations {
                let workload = MultiRoundWorkload(users: users, rounds: rounds, seed: options.seed)
                let runner = MultiRoundRunner(concurrency: options.shape.concurrency ?? users, progressInterval: progressInterval)
                let result = await runner.run(workload, send: { await client.send($0) }, onProgress: onProgress)
                var report = BenchReport(workload: options.workload, model: model, shape: options.shape, result: result)
                report.splitRounds(of: result, users: users)
                return report
            }
            let prompts = WorkloadGenerator(kind: options.workload, seed: options.seed).prompts(count: options.requests)
            let runner = BenchRunner(shape: options.shape, seed: options.seed, progressInterval: progressInterval)
            let result = await runner.run(prompts: prompts, send: { await client.send($0) }, onProgress: onProgress)
            return BenchReport(workload: options.workload, model: model, shape: options.shape, result: result)
        }
    }

    static func httpConfiguration(_ options: ServeBenchmarkOptions) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        // The default of 8 connections per host would queue clients inside
        // the HTTP client and hide them from the server under test.
        let connections = min(options.shape.concurrency ?? options.requests, 1024)
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        // A server may sit silent through a long prefill queue; only the
        // per-request timeout decides when that is too long.
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(Int64(options.timeout.seconds.rounded(.up)) + 1))
        return configuration
    }
}
