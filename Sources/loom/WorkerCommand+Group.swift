import ArgumentParser
import Foundation
import LoomCluster
import LoomModel
import LoomProtocol
import LoomTensorParallel

extension WorkerCommand {
    /// This process's place in a tensor-parallel group, nil for a worker of
    /// one process: from its `--config` entry (`tensor_parallel`, `tp_port`,
    /// with `--tp-rank` choosing the rank), else from the flags or a
    /// LeaderWorkerSet's environment.
    func groupSpec() throws -> GroupSpec? {
        guard member.config != nil else { return try tensorParallel.spec() }
        guard tensorParallel.tpSize == nil, tensorParallel.tpPeers == nil else {
            throw ValidationError("with --config the group's size and address come from the worker's tensor_parallel and tp_port; give --tp-rank alone")
        }
        let worker = try configEntry().worker
        let rank = tensorParallel.tpRank ?? 0
        guard worker.tensorParallel > 1, let port = worker.groupPort else {
            if rank > 0 { throw ValidationError("worker \(worker.name) has no tensor_parallel in \(member.config!), so it has no rank \(rank)") }
            return nil
        }
        guard (0..<worker.tensorParallel).contains(rank) else {
            throw ValidationError("--tp-rank must be in 0..<\(worker.tensorParallel) (worker \(worker.name)'s tensor_parallel)")
        }
        var spec = GroupSpec(size: worker.tensorParallel, rank: rank, leader: .tcp(host: worker.host, port: port), joinTimeout: .seconds(tensorParallel.tpJoinSeconds))
        spec.threads = worker.threads
        return spec
    }

    /// The worker's entry in `--config`, and the cluster's model.
    func configEntry() throws -> (worker: WorkerConfig, model: String?) {
        guard let cluster = try member.cluster(refusing: []) else { throw ValidationError("--config is needed") }
        return (try entry(in: cluster), cluster.model)
    }

    /// `--name`'s entry among the cluster's workers.
    func entry(in cluster: ClusterConfig) throws -> WorkerConfig {
        guard let worker = cluster.workers.first(where: { $0.name == member.name }) else {
            throw ValidationError("\(cluster.file) has no worker named '\(member.name)'; it has \(cluster.workers.map(\.name).joined(separator: ", "))")
        }
        return worker
    }

    /// A rank above 0: no router, no server; it joins its leader and runs
    /// the leader's steps.
    func runFollower(_ group: GroupSpec) async throws {
        var model = member.model, threads = self.threads
        if member.config != nil {
            let entry = try configEntry()
            (model, threads) = (entry.model, entry.worker.threads)
        }
        let path: String
        do { path = try ModelLocator.resolve(model) } catch let error as GGUFError { throw ValidationError(error.message) }
        try await FollowerProcess.run(group, modelPath: path, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
    }
}

extension Loom_Group_KVPool {
    /// A follower's pool as a reservation lists it: with the heads its
    /// shard holds and its blocks' size.
    func rankPool(_ split: TensorSplit, config: ModelConfig, blockSize: Int) -> Loom_Cluster_RankPool {
        var pool = Loom_Cluster_RankPool()
        let heads = split.shards[Int(rank)].kvHeads
        (pool.rank, pool.region, pool.transferHost, pool.transferPort, pool.hostID) = (rank, region, transferHost, transferPort, hostID)
        pool.firstKvHead = UInt32(heads.lowerBound)
        pool.kvHeads = UInt32(heads.count)
        pool.bytesPerBlock = UInt64(KVCacheLayout(layers: config.layerCount, kvDim: heads.count * config.headDim, blockSize: blockSize).bytesPerBlock)
        return pool
    }
}
