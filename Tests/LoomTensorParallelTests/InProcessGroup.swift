import Foundation
import LoomModel
import LoomTensorParallel
import LoomTesting
import LoomWire

/// A whole group in this process, for tests of the split and the
/// collective: rank 0's model is the caller's to drive, every other rank
/// runs `FollowerRank` on a thread of its own. The regions, the join over
/// RPC and the all-reduces are the real ones; only the processes are not.
final class InProcessGroup {
    let leader: Transformer
    let leaderGroup: TensorParallelGroup
    private var followers: [(group: TensorParallelGroup, done: DispatchSemaphore)] = []
    /// The other ranks' models, to look at once `stop()` returned.
    private(set) var followerModels: [Transformer] = []
    let failures = FollowerFailures()

    /// `transports[r]` is how rank r reaches its peers (a pair talks over
    /// tcp if either side says so).
    static func start(path: String, size: Int, maxBatchTokens: Int = 64, kvBlocks: Int = 16, threads: Int = 1, transports: [GroupTransport]? = nil) async throws -> InProcessGroup {
        let transports = transports ?? Array(repeating: .automatic, count: size)
        let file = try GGUFFile(path: path)
        let split = try TensorSplit(file: file, size: size)
        let leader = try Transformer(file: file, threads: threads, maxBatchTokens: maxBatchTokens, shard: split.shards[0])
        let geometry = GroupGeometry(kvBlocks: kvBlocks, blockSize: KVCacheLayout.defaultBlockSize, maxBatchTokens: maxBatchTokens, maxLogitRows: leader.maxLogitRows)
        let spin = GroupTiming(spin: .microseconds(20))
        let leaderRank = try await GroupLeader.listen(
            GroupSpec(size: size, rank: 0, leader: .tcp(host: "127.0.0.1", port: 0), joinTimeout: .seconds(20), timing: spin, transport: transports[0]), file: file, split: split, geometry: geometry)
        let address = leaderRank.address
        async let leaderGroup = leaderRank.form()
        // Every rank's join waits for the whole group, so they join at once.
        let joined = try await withThrowingTaskGroup(of: (Int, TensorParallelGroup).self) { tasks in
            for rank in 1..<size {
                tasks.addTask {
                    (rank, try await TensorParallelGroup.form(GroupSpec(size: size, rank: rank, leader: address, joinTimeout: .seconds(20), timing: spin, transport: transports[rank]), file: file, split: split))
                }
            }
            return try await tasks.reduce(into: [:]) { $0[$1.0] = $1.1 }.sorted { $0.key < $1.key }.map(\.value)
        }
        // The leader's group forms once every follower has loaded.
        var followers: [FollowerRank] = []
        for (rank, member) in zip(1..., joined) {
            let g = member.geometry
            let model = try Transformer(file: file, threads: threads, maxBatchTokens: g.maxBatchTokens, maxLogitRows: g.maxLogitRows, shard: split.shards[rank])
            followers.append(try FollowerRank(model: model, group: member))
        }
        let group = InProcessGroup(leader: leader, leaderGroup: try await leaderGroup)
        leader.collective = group.leaderGroup.collective.value
        for (follower, member) in zip(followers, joined) { group.startFollower(follower, group: member) }
        return group
    }

    private init(leader: Transformer, leaderGroup: TensorParallelGroup) {
        self.leader = leader
        self.leaderGroup = leaderGroup
    }

    private func startFollower(_ follower: FollowerRank, group: TensorParallelGroup) {
        let done = DispatchSemaphore(value: 0)
        let failures = failures
        followerModels.append(follower.model)
        let box = UncheckedBox(follower)
        let thread = Thread {
            do { try box.value.run() } catch { failures.record("\(error)") }
            done.signal()
        }
        thread.start()
        followers.append((group, done))
    }

    /// Ends every follower's loop and waits for them.
    func stop() {
        leaderGroup.collective.value.stop()
        for follower in followers { follower.done.wait() }
    }
}

/// Errors the follower threads ended with.
final class FollowerFailures: Sendable {
    let errors = Mutex<[String]>([])
    func record(_ error: String) { errors.withLock { $0.append(error) } }
}

import Synchronization

/// Carries a follower to the thread that alone runs it.
/// `@unchecked Sendable`: the value is handed over once, before the thread
/// starts, and only that thread touches it afterwards.
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
