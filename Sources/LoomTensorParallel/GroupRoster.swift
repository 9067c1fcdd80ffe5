import LoomProtocol
import LoomTransfer

/// The leader's list of who has joined. Each join is checked against what
/// the leader itself loaded and computed; the first mismatch fails the
/// whole start-up (every rank waiting, and the leader) with a message that
/// names the rank, rather than leaving a group that would compute garbage.
actor GroupRoster {
    /// What every rank must agree on: the model, and the shard the leader
    /// computed for each rank.
    struct Expectation: Sendable {
        var size: Int
        var model: String
        var shards: [String]
    }

    let expected: Expectation
    private var members: [Int: GroupMember] = [:]
    private var reportedPools: [Int: Loom_Group_KVPool] = [:]
    private var failure: TensorParallelError?
    private var waiting: [CheckedContinuation<[GroupMember], any Error>] = []

    init(expected: Expectation, leader: GroupMember) {
        self.expected = expected
        members[0] = leader
    }

    /// A rank's join: returns every member once all have joined.
    func join(_ request: Loom_Group_JoinRequest) async throws -> [GroupMember] {
        if let failure { throw failure }
        let member = try admit(request)
        members[member.rank] = member
        if members.count == expected.size { finish(.success(complete)) }
        return try await wait()
    }

    /// The leader's own wait, bounded by `timeout`.
    func waitForAll(timeout: Duration) async throws -> [GroupMember] {
        if members.count == expected.size { return complete }
        Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expire(after: timeout)
        }
        return try await wait()
    }

    private func wait() async throws -> [GroupMember] {
        if let failure { throw failure }
        if members.count == expected.size { return complete }
        // Cancelled (a child rank exited, the leader is stopping): fail the
        // start-up for everyone rather than wait out the join timeout.
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { waiting.append($0) }
        } onCancel: {
            Task { await self.cancel() }
        }
    }

    private func cancel() {
        fail(TensorParallelError(.joinTimeout, "the group's start-up was cancelled before every rank joined"))
    }

    private var complete: [GroupMember] { (0..<expected.size).map { members[$0]! } }

    private func expire(after timeout: Duration) {
        guard failure == nil, members.count < expected.size else { return }
        let missing = (0..<expected.size).filter { members[$0] == nil }
        fail(TensorParallelError(.joinTimeout, "rank\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")) of \(expected.size) never joined within \(timeout); start \(missing.count == 1 ? "it" : "them") with --tp-rank and this leader's address in --tp-peers"))
    }

    private func admit(_ r: Loom_Group_JoinRequest) throws -> GroupMember {
        let rank = Int(r.rank)
        func refuse(_ what: String) -> TensorParallelError {
            let error = TensorParallelError(.mismatch, "rank \(rank) (pid \(r.pid) on \(r.host)) refused: \(what)")
            fail(error)
            return error
        }
        guard Int(r.size) == expected.size else {
            throw refuse("it was started with --tp-size \(r.size) but the leader with \(expected.size); start every rank of the group with the same size")
        }
        guard (1..<expected.size).contains(rank) else {
            throw refuse("rank \(rank) is not in 1..<\(expected.size) (rank 0 is the leader)")
        }
        if let earlier = members[rank] {
            throw refuse("rank \(rank) already joined (pid \(earlier.pid) on \(earlier.host)); give every rank its own --tp-rank")
        }
        guard r.model == expected.model else {
            throw refuse("it loaded \(r.model) but the leader loaded \(expected.model); start every rank with the same --model")
        }
        guard r.shard == expected.shards[rank] else {
            throw refuse("it computed its shard as [\(r.shard)] but the leader expects [\(expected.shards[rank])]; the ranks split the model differently (different Loom builds?)")
        }
        let region: RegionDescriptor
        do { region = try RegionDescriptor(serialized: Array(r.region)) } catch {
            throw refuse("its region descriptor does not parse (\(error))")
        }
        return GroupMember(rank: rank, region: region, pid: r.pid, host: r.host, hostID: r.hostID, dataHost: r.dataHost, dataPort: Int(r.dataPort))
    }

    /// A joined follower's KV pool.
    func record(_ pool: Loom_Group_KVPool) throws {
        let rank = Int(pool.rank)
        guard members[rank] != nil, rank > 0 else {
            throw TensorParallelError(.mismatch, "rank \(rank) reported a KV pool without having joined")
        }
        reportedPools[rank] = pool
    }

    var pools: [Loom_Group_KVPool] { reportedPools.keys.sorted().map { reportedPools[$0]! } }

    private func fail(_ error: TensorParallelError) {
        guard failure == nil else { return }
        failure = error
        finish(.failure(error))
    }

    private func finish(_ result: Result<[GroupMember], any Error>) {
        let resumed = waiting
        waiting = []
        for continuation in resumed { continuation.resume(with: result) }
    }
}
