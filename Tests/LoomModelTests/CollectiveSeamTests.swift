import Foundation
import LoomModel
import LoomTesting
import Synchronization
import Testing

/// Records every all-reduce the forward pass asks for, and can scale the
/// attention outputs, to show the seam sits on the residual's path.
final class RecordingCollective: Collective, Sendable {
    let calls = Mutex<[(SyncPoint, Int)]>([])
    let attentionScale: Float

    init(attentionScale: Float = 1) { self.attentionScale = attentionScale }

    func allReduce(_ point: SyncPoint, _ values: UnsafeMutableBufferPointer<Float>) throws {
        calls.withLock { $0.append((point, values.count)) }
        guard case .attentionOutput = point, attentionScale != 1 else { return }
        for i in values.indices { values[i] *= attentionScale }
    }
}

/// The tensor-parallel seam: two named all-reduces per layer, where a
/// group's ranks will sum their shards' partial outputs.
@Suite struct CollectiveSeamTests {
    func logits(_ model: Transformer, tokens: [TokenID]) throws -> [Float] {
        let kv = TestKV(model.config, blocks: 4)
        var batch = ForwardBatch()
        batch.append(tokens: tokens, startingAt: 0, blockTable: [0, 1], logits: .last)
        return Array(try model.forward(batch, kv: kv.memory))
    }

    @Test func everyLayerSumsItsAttentionAndFeedForwardOutputsInOrder() throws {
        let model = try loadTiny(TinyModel())
        let recording = RecordingCollective()
        model.collective = recording
        let tokens: [TokenID] = [3, 1, 4, 1, 5]
        _ = try logits(model, tokens: tokens)
        let expected = (0..<model.config.layerCount).flatMap { layer in
            [SyncPoint.attentionOutput(layer: layer), .feedForwardOutput(layer: layer)]
        }
        let calls = recording.calls.withLock { $0 }
        #expect(calls.map(\.0) == expected)
        #expect(calls.allSatisfy { $0.1 == tokens.count * model.config.embeddingLength })
    }

    @Test func whatTheSeamReturnsIsWhatJoinsTheResidual() throws {
        let model = try loadTiny(TinyModel())
        let tokens: [TokenID] = [7, 2, 9]
        let alone = try logits(model, tokens: tokens)
        model.collective = RecordingCollective(attentionScale: 1)
        #expect(try logits(model, tokens: tokens) == alone, "a group of one changes nothing")
        model.collective = RecordingCollective(attentionScale: 2)
        #expect(maxDifference(try logits(model, tokens: tokens), alone) > 1e-3, "the summed output is the one used")
    }

    @Test func thePlanNamesEverySeamAndTheCollectiveMeetsExactlyThose() throws {
        let model = try loadTiny(TinyModel())
        let plan = model.plan
        #expect(plan.steps.first == .embed && plan.steps.last == .logits)
        #expect(Array(plan.steps[1...6]) == [
            .attention(layer: 0), .allReduce(.attentionOutput(layer: 0)), .residual,
            .feedForward(layer: 0), .allReduce(.feedForwardOutput(layer: 0)), .residual,
        ])
        let recording = RecordingCollective()
        model.collective = recording
        _ = try logits(model, tokens: [1, 2, 3])
        #expect(recording.calls.withLock { $0.map(\.0) } == plan.syncPoints)
    }

    @Test func aMoEModelsPlanSendsItsFeedForwardToTheExpertBackend() throws {
        var spec = TinyModel()
        spec.experts = 4
        spec.expertsUsed = 2
        let model = try loadTiny(spec)
        #expect(model.plan.steps.contains(.experts(layer: 1)) && !model.plan.steps.contains(.feedForward(layer: 1)))
        let local = try logits(model, tokens: [5, 6, 7])
        let recording = RecordingExperts(wrapping: model.experts)
        model.experts = recording
        #expect(try logits(model, tokens: [5, 6, 7]) == local, "the backend's combine is what joins the residual")
        let routed = recording.calls
        #expect(routed.map(\.layer) == [0, 1], "one dispatch per MoE layer, in order")
        #expect(routed.allSatisfy { $0.rows == 3 * spec.expertsUsed }, "each token goes to its top-\(spec.expertsUsed) experts")
    }
}

/// Passes each MoE layer's routes on to the real backend, and records them.
final class RecordingExperts: ExpertBackend {
    var calls: [(layer: Int, rows: Int)] = []
    let inner: any ExpertBackend

    init(wrapping inner: any ExpertBackend) { self.inner = inner }

    func run(layer: Int, routes: ExpertRoutes, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, model: Transformer) throws {
        calls.append((layer, routes.rowsByExpert.reduce(0) { $0 + $1.count }))
        try inner.run(layer: layer, routes: routes, input: input, output: output, model: model)
    }
}
