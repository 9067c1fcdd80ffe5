import LoomModel

/// Runs a step's plan through the model over the engine's KV memory. The
/// plan is plain data, so the ranks of a tensor-parallel group can each run
/// the plan their leader scheduled; the cross-process points inside the
/// forward pass are the model's seams (`Transformer.collective`,
/// `Transformer.experts`).
struct ModelRunner {
    let model: Transformer
    let memory: PagedKVMemory

    /// The logits of the plan's `logitRequests`, one vocabulary-sized row
    /// each, in that order. The rows are the model's scratch: valid, and
    /// writable by the sampling step, until the next call.
    func execute(_ plan: StepPlan, exports: [BlockExport] = []) throws -> UnsafeMutableBufferPointer<Float> {
        var batch = plan.forwardBatch()
        batch.exports = exports
        let logits = try model.forward(batch, kv: memory.memory)
        // The model hands out its own mutable scratch as read-only; masking
        // a constrained row in place spares a vocabulary-sized copy.
        return UnsafeMutableBufferPointer(mutating: logits)
    }
}
