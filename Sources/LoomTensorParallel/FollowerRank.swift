import LoomModel

/// A rank other than the leader: it runs whatever pass the leader sends,
/// on its shard and its own slice of every KV block, until the leader
/// stops the group (or dies, which the collective reports).
public final class FollowerRank {
    public let model: Transformer
    let collective: GroupCollective
    let memory: UnsafeMutablePointer<UInt16>
    let kv: KVCacheMemory

    /// `model` holds this rank's shard, sized by the leader's geometry;
    /// the leader hears that this rank is ready.
    public init(model: Transformer, group: TensorParallelGroup) throws {
        let g = group.geometry
        self.model = model
        collective = group.collective.value
        model.collective = collective
        let layout = KVCacheLayout(config: model.config, blockSize: g.blockSize)
        let halves = layout.blockStride * max(g.kvBlocks, 1)
        memory = .allocate(capacity: halves)
        memory.initialize(repeating: 0, count: halves)
        kv = KVCacheMemory(layout: layout, base: memory, blockCount: g.kvBlocks)
        try collective.signalReady()
    }

    deinit { memory.deallocate() }

    /// Time spent waiting on the other ranks inside steps.
    public var waited: Duration { collective.waited }

    /// Runs passes until the leader stops; returns how many ran.
    @discardableResult
    public func run() throws -> Int {
        var steps = 0
        while let batch = try collective.nextStep() {
            _ = try model.forward(batch, kv: kv)
            steps += 1
        }
        return steps
    }
}
