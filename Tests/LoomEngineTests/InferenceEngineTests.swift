import Foundation
import Synchronization
import Testing
import LoomEngine
import LoomModel
import LoomTesting

@Suite struct InferenceEngineTests {
    let path: String
    init() throws { path = try TinyModel().write(to: temporaryPath("engine.gguf")) }

    private func engine(blocks: Int = 64, maxRunning: Int = 8) throws -> (InferenceEngine, Transformer) {
        let model = try Transformer(path: path, threads: 1, maxBatchTokens: 64)
        let engine = try InferenceEngine(model: model, configuration: SchedulerConfiguration(
            blockCount: blocks, tokenBudget: 32, maxRunning: maxRunning, contextLength: model.config.contextLength))
        return (engine, try Transformer(path: path, threads: 1))
    }

    private func collect(_ stream: AsyncThrowingStream<GenerationOutput, Error>) async throws -> ([TokenID], FinishReason?) {
        var tokens: [TokenID] = []
        var reason: FinishReason?
        for try await output in stream {
            switch output {
            case .token(let token, _, _): tokens.append(token)
            case .finished(let why, _): reason = why
            }
        }
        return (tokens, reason)
    }

    @Test func concurrentRequestsGetWhatEachGetsAlone() async throws {
        let (engine, reference) = try engine()
        defer { engine.shutdown() }
        let shared = (0..<35).map { TokenID(($0 * 11) % 250) }
        let prompts = (0..<5).map { i in shared + (0..<(3 + 7 * i)).map { TokenID(($0 * 17 + i) % 250) } }
        let results = try await withThrowingTaskGroup(of: (Int, [TokenID], FinishReason?).self) { group in
            for (i, prompt) in prompts.enumerated() {
                group.addTask {
                    let (tokens, reason) = try await collect(engine.generate(GenerationRequest(prompt: prompt, maxTokens: 10)))
                    return (i, tokens, reason)
                }
            }
            var all: [Int: ([TokenID], FinishReason?)] = [:]
            for try await (i, tokens, reason) in group { all[i] = (tokens, reason) }
            return all
        }
        for (i, prompt) in prompts.enumerated() {
            let alone = try Generator(model: reference).generate(prompt: prompt, maxTokens: 10).tokens
            #expect(results[i]?.0 == alone, "prompt \(i)")
            #expect(results[i]?.1 == .length)
        }
    }

    @Test func logprobsComeWithEachToken() async throws {
        let (engine, _) = try engine()
        defer { engine.shutdown() }
        var steps = 0
        for try await output in engine.generate(GenerationRequest(prompt: [1, 2, 3], maxTokens: 4, topLogprobs: 3)) {
            guard case .token(let token, let logprob, let top) = output else { continue }
            steps += 1
            #expect(top.count == 3)
            #expect(top[0].token == token)
            #expect(top[0].logprob == logprob && logprob <= 0)
        }
        #expect(steps == 4)
    }

    @Test func aRefusedRequestFailsAloneAndTheEngineCarriesOn() async throws {
        let (engine, _) = try engine()
        defer { engine.shutdown() }
        let tooLong = [TokenID](repeating: 5, count: 300)
        await #expect(throws: SchedulerError.self) {
            _ = try await collect(engine.generate(GenerationRequest(prompt: tooLong, maxTokens: 4)))
        }
        let (tokens, reason) = try await collect(engine.generate(GenerationRequest(prompt: [7, 8, 9], maxTokens: 3)))
        #expect(tokens.count == 3 && reason == .length)
    }

    /// Dropping a stream cancels the request and frees its blocks. The
    /// engine thread is held in the second step (in the constraint's `mask`)
    /// until the consumer has dropped its stream, so the cancel is queued
    /// before the third step whatever the machine's speed: the request must
    /// end after two tokens, not its 150.
    @Test func droppingTheStreamCancelsAndFreesBlocks() async throws {
        let (engine, _) = try engine(blocks: 12, maxRunning: 2)
        defer { engine.shutdown() }
        let gate = HoldFirstToken()
        var stream: AsyncThrowingStream<GenerationOutput, Error>? = engine.generate(
            GenerationRequest(prompt: Array(repeating: 3, count: 20), maxTokens: 150, constraint: gate))
        var iterator = stream!.makeAsyncIterator()
        guard case .token = try await iterator.next() else { Issue.record("no first token"); return }
        stream = nil
        iterator = AsyncThrowingStream<GenerationOutput, Error>.makeStream().stream.makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(50))  // let the termination handler queue the cancel
        gate.release.signal()
        var idle = engine.snapshot
        for _ in 0..<2_000 where idle.running + idle.waiting > 0 || idle.stats.generatedTokens == 0 {
            try await Task.sleep(for: .milliseconds(5))
            idle = engine.snapshot
        }
        #expect(idle.running == 0 && idle.usedBlocks == 0)
        #expect(idle.stats.generatedTokens == 2, "the dropped request kept generating")
        let (tokens, reason) = try await collect(engine.generate(GenerationRequest(prompt: Array(repeating: 4, count: 20), maxTokens: 150)))
        #expect(tokens.count == 150 && reason == .length)
    }

    /// Polls a condition the engine thread makes true, for at most 10 s.
    private func eventually(_ condition: () -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for _ in 0..<5_000 where !condition() { try await Task.sleep(for: .milliseconds(2)) }
        try #require(condition(), "the engine thread never got there", sourceLocation: sourceLocation)
    }

    /// Metrics and load reports read `snapshot`: a client that got a token
    /// must find that token's step in it. The engine is held inside the
    /// step that hands out two first tokens, after the first is delivered
    /// and before the second: the client holding the first must see both
    /// sequences running, not the state from before the step.
    @Test func aClientThatGotATokenFindsItsStepInTheSnapshot() async throws {
        let (engine, _) = try engine()
        defer { engine.shutdown() }
        // Holds the engine so that both requests are admitted in one step.
        let gate = HoldFirstToken(at: 1)
        let held = engine.generate(GenerationRequest(prompt: [5, 6, 7], maxTokens: 1, constraint: gate))
        try await eventually { gate.masks == 1 }
        let second = HoldSecondAccept()
        let streams = [1, 2].map { i in engine.generate(GenerationRequest(prompt: [TokenID(10 * i), 11, 12, 13], maxTokens: 20, constraint: second)) }
        gate.release.signal()
        _ = try await collect(held)
        let firstToken = try await withThrowingTaskGroup(of: Bool.self) { group in
            for stream in streams {
                group.addTask {
                    var tokens = stream.makeAsyncIterator()
                    if case .token = try await tokens.next() { return true }
                    return false
                }
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        #expect(firstToken)
        try await eventually { second.accepts == 2 }
        #expect(engine.snapshot.running == 2, "the snapshot is from before the step that gave the client its token")
        second.release.signal()
    }

    @Test func stopTokensEndWithStop() async throws {
        let (engine, reference) = try engine()
        defer { engine.shutdown() }
        let prompt: [TokenID] = [40, 41, 42]
        let free = try Generator(model: reference).generate(prompt: prompt, maxTokens: 12).tokens
        // Stop on the first token that did not occur before it.
        let k = try #require(free.indices.dropFirst().first { !free[..<$0].contains(free[$0]) })
        let (tokens, reason) = try await collect(engine.generate(GenerationRequest(prompt: prompt, maxTokens: 12, stopTokens: [free[k]])))
        #expect(tokens == Array(free.prefix(k)))
        #expect(reason == .stop)
    }
}

/// Holds the engine thread in the second step's `mask` (after the first
/// token went out) until released.
final class HoldFirstToken: TokenConstraint, Sendable {
    let release = DispatchSemaphore(value: 0)
    /// Which `mask` call holds the engine thread.
    let heldCall: Int
    private let maskCalls = Atomic<Int>(0)
    var masks: Int { maskCalls.load(ordering: .relaxed) }

    init(at heldCall: Int = 2) { self.heldCall = heldCall }

    func mask(_ logits: UnsafeMutableBufferPointer<Float>) {
        if maskCalls.add(1, ordering: .relaxed).newValue == heldCall { release.wait() }
    }
    func accept(_ token: TokenID) {}
}

/// Shared by two requests: holds the engine thread in the second `accept`,
/// which comes after the first request's token was handed out.
final class HoldSecondAccept: TokenConstraint, Sendable {
    let release = DispatchSemaphore(value: 0)
    private let acceptCalls = Atomic<Int>(0)
    var accepts: Int { acceptCalls.load(ordering: .relaxed) }
    func mask(_ logits: UnsafeMutableBufferPointer<Float>) {}
    func accept(_ token: TokenID) {
        if acceptCalls.add(1, ordering: .relaxed).newValue == 2 { release.wait() }
    }
}
