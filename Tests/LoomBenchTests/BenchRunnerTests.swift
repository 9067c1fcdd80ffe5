import Foundation
import Testing
@testable import LoomBench

/// Tracks how many fake requests are in flight at once.
private actor InFlight {
    private(set) var current = 0
    private(set) var peak = 0
    func enter() {
        current += 1
        peak = max(peak, current)
    }
    func leave() { current -= 1 }
}

@Suite struct BenchRunnerTests {
    private let prompts = WorkloadGenerator(kind: .plain, seed: 1).prompts(count: 12)
    private let okMetrics = RequestMetrics(timeToFirstToken: 0.01, interTokenLatencies: [0.001], endToEnd: 0.02, outputTokens: 2)

    @Test func closedLoopKeepsExactlyTheClientsBusy() async {
        let inFlight = InFlight()
        let metrics = okMetrics
        let runner = BenchRunner(shape: .closed(concurrency: 3), seed: 1, progressInterval: .milliseconds(5))
        let result = await runner.run(prompts: prompts, send: { _ in
            await inFlight.enter()
            try? await Task.sleep(for: .milliseconds(10))
            await inFlight.leave()
            return .ok(metrics)
        }, onProgress: { _ in })
        #expect(await inFlight.peak == 3)
        #expect(result.outcomes.count == 12)
        #expect(result.outcomes.allSatisfy { $0.metrics != nil })
    }

    @Test func outcomesKeepPromptOrderAndFailuresAreCounted() async {
        let prompts = self.prompts
        let metrics = okMetrics
        let progress = ProgressLog()
        let runner = BenchRunner(shape: .open(rate: 500), seed: 2, progressInterval: .seconds(60))
        let result = await runner.run(prompts: prompts, send: { prompt in
            let index = prompts.firstIndex(of: prompt)!
            return index % 3 == 0 ? .failed("request \(index) refused") : .ok(metrics)
        }, onProgress: { progress.append($0) })
        #expect(result.outcomes[3] == .failed("request 3 refused"))
        #expect(result.outcomes[4] == .ok(metrics))
        let last = progress.last
        #expect(last?.done == 12)
        #expect(last?.failed == 4)

        let report = BenchReport(workload: .plain, model: "m", shape: .open(rate: 500), result: result)
        #expect(report.failures == 4)
        #expect(report.failure_reasons.count == BenchReport.keptFailureReasons - 1)
        #expect(report.output_tokens == 16)
        #expect(report.rate == 500 && report.concurrency == nil)
    }

    @Test func progressLineShowsCounts() {
        var progress = RunProgress(total: 64)
        progress.ok = 12
        progress.failed = 4
        progress.elapsed = 3.24
        #expect(progress.line(barWidth: 8) == "[##------] 16/64  ok 12  failed 4  elapsed 3.2 s")
    }
}

/// Progress callbacks arrive from the runner's tasks.
/// `@unchecked Sendable` is safe: `entries` is only touched while `lock` is held.
private final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [RunProgress] = []
    func append(_ p: RunProgress) { lock.withLock { entries.append(p) } }
    var last: RunProgress? { lock.withLock { entries.last } }
}
