/// Every request's outcome, in the order the prompts were given, and the
/// wall time from the first send to the last response.
public struct RunResult: Sendable {
    public var outcomes: [RequestOutcome]
    public var wallTime: Double

    public init(outcomes: [RequestOutcome], wallTime: Double) {
        self.outcomes = outcomes
        self.wallTime = wallTime
    }
}

/// Releases prompts in a closed or open loop and gathers the outcomes.
/// Sending is a closure so the loop logic is tested without a server.
public struct BenchRunner: Sendable {
    public var shape: LoadShape
    public var seed: UInt64
    /// How often the progress callback fires while requests are in flight.
    public var progressInterval: Duration

    public init(shape: LoadShape, seed: UInt64, progressInterval: Duration) {
        self.shape = shape
        self.seed = seed
        self.progressInterval = progressInterval
    }

    public func run(
        prompts: [BenchPrompt],
        send: @escaping @Sendable (BenchPrompt) async -> RequestOutcome,
        onProgress: @escaping @Sendable (RunProgress) -> Void
    ) async -> RunResult {
        let start = ContinuousClock.now
        let counter = ProgressCounter(total: prompts.count, start: start)
        let interval = progressInterval
        let result = await withTaskGroup(of: Void.self) { ticker -> RunResult in
            ticker.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    onProgress(await counter.snapshot())
                }
            }
            let outcomes: [RequestOutcome]
            switch shape {
            case .closed(let concurrency):
                outcomes = await closedLoop(prompts, concurrency: concurrency, counter: counter, send: send)
            case .open(let rate):
                outcomes = await openLoop(prompts, rate: rate, start: start, counter: counter, send: send)
            }
            let wallTime = (ContinuousClock.now - start).seconds
            ticker.cancelAll()
            return RunResult(outcomes: outcomes, wallTime: wallTime)
        }
        onProgress(await counter.snapshot())
        return result
    }

    private func closedLoop(
        _ prompts: [BenchPrompt], concurrency: Int, counter: ProgressCounter,
        send: @escaping @Sendable (BenchPrompt) async -> RequestOutcome
    ) async -> [RequestOutcome] {
        await withTaskGroup(of: (Int, RequestOutcome).self) { group in
            var outcomes = [RequestOutcome](repeating: .failed("not sent"), count: prompts.count)
            var next = 0
            while next < min(concurrency, prompts.count) {
                let index = next
                group.addTask { (index, await send(prompts[index])) }
                next += 1
            }
            // Each finished request frees its client for the next prompt.
            while let (index, outcome) = await group.next() {
                outcomes[index] = outcome
                await counter.record(outcome)
                if next < prompts.count {
                    let index = next
                    group.addTask { (index, await send(prompts[index])) }
                    next += 1
                }
            }
            return outcomes
        }
    }

    private func openLoop(
        _ prompts: [BenchPrompt], rate: Double, start: ContinuousClock.Instant, counter: ProgressCounter,
        send: @escaping @Sendable (BenchPrompt) async -> RequestOutcome
    ) async -> [RequestOutcome] {
        let arrivals = LoadShape.poissonArrivals(count: prompts.count, rate: rate, seed: seed)
        return await withTaskGroup(of: (Int, RequestOutcome).self) { group in
            // All tasks exist from the start and sleep until their arrival
            // time, so a slow server never delays later arrivals: that is
            // what makes the loop open. --requests bounds how many there are.
            for (index, offset) in arrivals.enumerated() {
                group.addTask {
                    try? await Task.sleep(until: start + .seconds(offset), clock: .continuous)
                    return (index, await send(prompts[index]))
                }
            }
            var outcomes = [RequestOutcome](repeating: .failed("not sent"), count: prompts.count)
            while let (index, outcome) = await group.next() {
                outcomes[index] = outcome
                await counter.record(outcome)
            }
            return outcomes
        }
    }
}
