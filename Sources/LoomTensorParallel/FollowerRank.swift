import LoomModel

/// Ships this rank's heads of a prefill's blocks to the decode worker,
/// after the step that computed them. Called on the compute thread, so it
/// copies the blocks out and returns; the writes go on elsewhere.
public protocol RankKVExporter {
    func export(_ export: BlockExport, from kv: KVCacheMemory)
}

/// A rank other than the leader: it runs whatever pass the leader sends,
/// on its shard and its own slice of every KV block, until the leader
/// stops the group (or dies, which the collective reports).
public final class FollowerRank {
    public let model: Transformer
    let collective: GroupCollective
    let kv: KVCacheMemory
    /// Set when this rank allocated its pool itself.
    private let owned: UnsafeMutablePointer<UInt16>?
    private let exporter: (any RankKVExporter)?

    /// The KV pool's size at the leader's geometry, in bytes.
    public static func poolBytes(model: Transformer, group: TensorParallelGroup) -> Int {
        KVCacheLayout(config: model.config, blockSize: group.geometry.blockSize).bytesPerBlock * max(group.geometry.kvBlocks, 1)
    }

    /// `model` holds this rank's shard, sized by the leader's geometry;
    /// `pool` (`poolBytes` long, zeroed, outliving this rank) is where its
    /// KV lives, allocated here when nil. The leader hears that this rank
    /// is ready.
    public init(model: Transformer, group: TensorParallelGroup, pool: UnsafeMutableRawPointer? = nil, exporter: (any RankKVExporter)? = nil) throws {
        let g = group.geometry
        self.model = model
        self.exporter = exporter
        collective = group.collective.value
        model.collective = collective
        let layout = KVCacheLayout(config: model.config, blockSize: g.blockSize)
        if let pool {
            owned = nil
            kv = KVCacheMemory(layout: layout, base: pool.assumingMemoryBound(to: UInt16.self), blockCount: g.kvBlocks)
        } else {
            let halves = layout.blockStride * max(g.kvBlocks, 1)
            owned = .allocate(capacity: halves)
            owned!.initialize(repeating: 0, count: halves)
            kv = KVCacheMemory(layout: layout, base: owned!, blockCount: g.kvBlocks)
        }
        try collective.signalReady()
    }

    deinit { owned?.deallocate() }

    /// Time spent waiting on the other ranks inside steps.
    public var waited: Duration { collective.waited }

    /// Runs passes until the leader stops; returns how many ran.
    @discardableResult
    public func run() throws -> Int {
        var steps = 0
        while let batch = try collective.nextStep() {
            _ = try model.forward(batch, kv: kv)
            if let exporter {
                for export in batch.exports { exporter.export(export, from: kv) }
            }
            steps += 1
        }
        return steps
    }
}
