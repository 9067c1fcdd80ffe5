import Foundation
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore

/// Where a rank stands in its group and how to reach the leader.
public struct GroupSpec: Sendable {
    public var size: Int
    public var rank: Int
    /// Where rank 0 takes joins (`--tp-peers`' first entry, or
    /// `LWS_LEADER_ADDRESS`).
    public var leader: RPCAddress
    public var joinTimeout: Duration
    /// Compute threads of each rank, for how long a waiting rank may spin.
    public var threads: Int
    public var timing: GroupTiming
    public var transport: GroupTransport

    public init(size: Int, rank: Int, leader: RPCAddress, joinTimeout: Duration = .seconds(60), threads: Int = 1, timing: GroupTiming = .init(), transport: GroupTransport = .automatic) {
        self.size = size
        self.rank = rank
        self.leader = leader
        self.joinTimeout = joinTimeout
        self.threads = threads
        self.timing = timing
        self.transport = transport
    }
}

/// How a rank reaches its peers.
public enum GroupTransport: String, Sendable, CaseIterable {
    /// Shared memory with ranks on this host, tcp to the others.
    case automatic
    /// tcp to every peer, as if this rank had a host of its own: the tcp
    /// path measured and tested on one machine.
    case tcp
}

/// A formed group, as one rank holds it: the collective its model's seams
/// run through, and (on the leader) the server that took the joins.
public final class TensorParallelGroup: Sendable {
    public let collective: GroupCollectiveBox
    public let members: [GroupMember]
    /// The other ranks' health, for a watchdog between steps.
    public let health: [PeerHealth]
    /// The ranks this one reaches over tcp (the others share its memory).
    public let overTCP: Set<Int>
    /// The leader's, which every rank sizes itself by.
    public let geometry: GroupGeometry
    /// Where the leader took the joins, and the group's token: what a
    /// follower needs to tell the leader more after the join.
    let leader: RPCAddress
    let token: UInt64
    private let server: Task<Void, Never>?

    fileprivate init(collective: GroupCollective, members: [GroupMember], overTCP: Set<Int>, geometry: GroupGeometry, leader: RPCAddress, token: UInt64, server: Task<Void, Never>?) {
        self.overTCP = overTCP
        self.leader = leader
        self.token = token
        self.collective = GroupCollectiveBox(collective)
        self.members = members
        health = collective.health
        self.geometry = geometry
        self.server = server
    }

    deinit { server?.cancel() }

    /// Every rank, and how this one reaches it, for start-up logs:
    /// "rank 0 pid 10 (here), rank 1 pid 11 over shm, rank 2 pid 9 at 10.0.0.3 over tcp".
    public var routes: String {
        let me = collective.value.rank
        return members.map { m in
            let how = m.rank == me ? "(here)" : overTCP.contains(m.rank) ? "at \(m.dataHost.isEmpty ? "the leader's address" : m.dataHost) over tcp" : "over shm"
            return "rank \(m.rank) pid \(m.pid) \(how)"
        }.joined(separator: ", ")
    }

    /// Registers this rank's region, meets the others through the leader,
    /// and maps their regions. `split` is the split every rank computes for
    /// itself; the leader checks each rank's against its own. The leader
    /// gives `geometry`; the others learn it from the leader.
    public static func form(_ spec: GroupSpec, file: GGUFFile, split: TensorSplit, geometry: GroupGeometry? = nil) async throws -> TensorParallelGroup {
        if let geometry {
            return try await GroupLeader.listen(spec, file: file, split: split, geometry: geometry).form()
        }
        let rank = try PendingRank(spec, file: file, split: split)
        let joined: (members: [GroupMember], geometry: GroupGeometry, token: UInt64)
        do {
            joined = try await join(spec, request: request(rank.me, size: spec.size, model: rank.model, shard: split.shards[spec.rank]))
        } catch {
            rank.listener.socket.close()
            throw error
        }
        return try await rank.complete(members: joined.members, geometry: joined.geometry, token: joined.token, server: nil)
    }

    private static func request(_ me: GroupMember, size: Int, model: String, shard: TensorShard) throws -> Loom_Group_JoinRequest {
        var r = Loom_Group_JoinRequest()
        r.rank = UInt32(me.rank)
        r.size = UInt32(size)
        r.model = model
        r.shard = shard.description
        r.region = Data(try me.region.serialized())
        r.pid = me.pid
        r.host = me.host
        r.hostID = me.hostID
        r.dataHost = me.dataHost
        r.dataPort = UInt32(me.dataPort)
        return r
    }

    static func serveJoins(at address: RPCAddress, roster: GroupRoster, geometry: GroupGeometry, token: UInt64) async throws -> (RPCAddress, Task<Void, Never>) {
        var services = RPCServices()
        services.unary(GroupRPC.join) { request, _ in
            let members = try await roster.join(request)
            var reply = Loom_Group_JoinReply()
            reply.members = try members.map { m in
                var member = Loom_Group_Member()
                member.rank = UInt32(m.rank)
                member.region = Data(try m.region.serialized())
                member.pid = m.pid
                member.host = m.host
                member.hostID = m.hostID
                member.dataHost = m.dataHost
                member.dataPort = UInt32(m.dataPort)
                return member
            }
            reply.geometry = geometry.proto
            reply.token = token
            return (reply, ByteBuffer())
        }
        services.unary(GroupRPC.kvPool) { pool, _ in
            guard pool.token == token else { throw WireError(.handlerFailed, "a KV pool report without this group's token (from rank \(pool.rank)); only a member may report one") }
            try await roster.record(pool)
            return (Loom_Group_KVPoolReply(), ByteBuffer())
        }
        let server = try await RPCServer.bind(address, services: services, configuration: RPCConfiguration(nodeName: "tp-leader"))
        return (server.localAddress, Task { try? await server.run() })
    }

    /// Dials the leader until it answers or `joinTimeout` passes: ranks may
    /// start in any order.
    private static func join(_ spec: GroupSpec, request: Loom_Group_JoinRequest) async throws -> ([GroupMember], GroupGeometry, token: UInt64) {
        let deadline = ContinuousClock.now + spec.joinTimeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                let reply = try await RPCConnection.withConnection(to: spec.leader, configuration: RPCConfiguration(nodeName: "tp-rank-\(spec.rank)")) { connection in
                    try await connection.unary(GroupRPC.join, request, timeout: deadline - .now).0
                }
                let members = try reply.members.map { m in
                    GroupMember(rank: Int(m.rank), region: try RegionDescriptor(serialized: Array(m.region)), pid: m.pid, host: m.host, hostID: m.hostID,
                                dataHost: m.dataHost, dataPort: Int(m.dataPort))
                }
                return (members, GroupGeometry(reply.geometry), reply.token)
            } catch let error as WireError where error.code == .handlerFailed {
                throw TensorParallelError(.mismatch, "the leader at \(spec.leader.hostPort) refused rank \(spec.rank): \(error.message)")
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw TensorParallelError(.joinTimeout, "rank \(spec.rank) could not join the leader at \(spec.leader.hostPort) within \(spec.joinTimeout) (last: \(lastError.map { "\($0)" } ?? "no answer")); start rank 0 there, or fix --tp-peers")
    }
}

/// The collective, handed from the task that formed the group to the one
/// thread that computes with it.
///
/// `@unchecked Sendable`: `GroupCollective` is used by exactly one thread
/// at a time, the rank's compute thread; the box only carries it across
/// the `await` that formed it, after which nothing else touches it.
public final class GroupCollectiveBox: @unchecked Sendable {
    public let value: GroupCollective
    init(_ value: GroupCollective) { self.value = value }
}

/// How the leader sized its pool and its passes (see `Loom_Group_Geometry`).
public struct GroupGeometry: Sendable, Equatable {
    public var kvBlocks: Int
    public var blockSize: Int
    public var maxBatchTokens: Int
    public var maxLogitRows: Int

    public init(kvBlocks: Int, blockSize: Int, maxBatchTokens: Int, maxLogitRows: Int) {
        self.kvBlocks = kvBlocks
        self.blockSize = blockSize
        self.maxBatchTokens = maxBatchTokens
        self.maxLogitRows = maxLogitRows
    }

    init(_ p: Loom_Group_Geometry) {
        self.init(kvBlocks: Int(p.kvBlocks), blockSize: Int(p.blockSize), maxBatchTokens: Int(p.maxBatchTokens), maxLogitRows: Int(p.maxLogitRows))
    }

    var proto: Loom_Group_Geometry {
        var p = Loom_Group_Geometry()
        p.kvBlocks = UInt32(kvBlocks)
        p.blockSize = UInt32(blockSize)
        p.maxBatchTokens = UInt32(maxBatchTokens)
        p.maxLogitRows = UInt32(maxLogitRows)
        return p
    }
}

/// The leader, listening for joins before the group exists, so whoever
/// starts the other ranks can tell them where (`address`; port 0 in the
/// spec picks a free one).
public final class GroupLeader: Sendable {
    public let address: RPCAddress
    private let rank: PendingRank
    private let roster: GroupRoster
    private let geometry: GroupGeometry
    private let server: Task<Void, Never>
    private let timeout: Duration
    private let token: UInt64

    public static func listen(_ spec: GroupSpec, file: GGUFFile, split: TensorSplit, geometry: GroupGeometry) async throws -> GroupLeader {
        precondition(spec.rank == 0, "rank 0 leads")
        let rank = try PendingRank(spec, file: file, split: split)
        let token = UInt64.random(in: 1...UInt64.max)
        let roster = GroupRoster(expected: .init(size: spec.size, model: rank.model, shards: split.shards.map(\.description)), leader: rank.me)
        let (address, server) = try await TensorParallelGroup.serveJoins(at: spec.leader, roster: roster, geometry: geometry, token: token)
        return GroupLeader(address: address, rank: rank, roster: roster, geometry: geometry, server: server, timeout: spec.joinTimeout, token: token)
    }

    private init(address: RPCAddress, rank: PendingRank, roster: GroupRoster, geometry: GroupGeometry, server: Task<Void, Never>, timeout: Duration, token: UInt64) {
        self.address = address
        self.rank = rank
        self.roster = roster
        self.geometry = geometry
        self.server = server
        self.timeout = timeout
        self.token = token
    }

    /// The followers' KV pools, in rank order: complete once `form()`
    /// returned, as each follower reports its pool before it says it is ready.
    public func kvPools() async -> [Loom_Group_KVPool] {
        await roster.pools
    }

    /// Waits for every rank to join (or the first to be refused), and then
    /// to load its shard.
    public func form() async throws -> TensorParallelGroup {
        do {
            let members = try await roster.waitForAll(timeout: timeout)
            let group = try await rank.complete(members: members, geometry: geometry, token: token, server: server)
            let (collective, timeout) = (group.collective, timeout)
            try await onOwnThread { try collective.value.awaitReady(timeout: timeout) }
            return group
        } catch {
            // The refused rank's answer is on its way out; let it go first.
            try? await Task.sleep(for: .seconds(1))
            server.cancel()
            rank.listener.socket.close()
            throw error
        }
    }
}

/// A rank with its region registered and its tcp port open, not yet in a
/// group.
struct PendingRank: Sendable {
    let spec: GroupSpec
    let split: TensorSplit
    let layouts: [GroupRegionLayout]
    let region: RegisteredRegion
    let listener: LaneListener
    let me: GroupMember
    let model: String

    init(_ spec: GroupSpec, file: GGUFFile, split: TensorSplit) throws {
        let whole = try ModelConfig(gguf: file)
        layouts = (0..<spec.size).map { r in
            GroupRegionLayout(size: spec.size, embedding: whole.embeddingLength, vocabulary: whole.vocabularySize, holdsLogits: r == 0)
        }
        // Named `<name>.pid<PID>` so the next start on this host removes the
        // file of a rank that was killed (or exited) before unlinking it.
        StaleSharedRegions.remove()
        let table = RegionTable(owner: "tp\(spec.rank).pid\(getpid())", epoch: UInt64(Date().timeIntervalSince1970 * 1e6))
        region = try SharedMemoryRegion.register(in: table, length: layouts[spec.rank].length)
        listener = try GroupMesh.listen()
        // A rank alone on its "host" shares memory with no one.
        let hostID = spec.transport == .tcp ? "\(HostIdentity.current)/tcp-\(getpid())-\(spec.rank)" : HostIdentity.current
        var dataHost = ""
        if spec.rank > 0, case .tcp(let host, let port) = spec.leader {
            dataHost = GroupMesh.localAddress(toward: host, port: port) ?? ""
        }
        me = GroupMember(rank: spec.rank, region: region.descriptor, pid: getpid(), host: ProcessInfo.processInfo.hostName, hostID: hostID,
                         dataHost: dataHost, dataPort: listener.port)
        model = TensorSplit.identity(of: file)
        self.spec = spec
        self.split = split
    }

    /// Connects to the peers on other hosts (on a thread: it blocks until
    /// they connect back) and maps the others' regions.
    func complete(members: [GroupMember], geometry: GroupGeometry, token: UInt64, server: Task<Void, Never>?) async throws -> TensorParallelGroup {
        defer { listener.socket.close() }
        let leaderHost: String
        if case .tcp(let host, _) = spec.leader { leaderHost = host } else { leaderHost = "127.0.0.1" }
        do {
            let (me, spec, listener) = (me, spec, listener)
            let sockets = try await onOwnThread {
                try GroupMesh.connect(me, members: members, listener: listener, leaderHost: leaderHost, token: token, within: spec.joinTimeout)
            }
            let collective = try GroupCollective(
                rank: spec.rank, own: region, members: members, sockets: sockets, vocabularies: split.shards.map(\.vocabulary),
                layouts: layouts,
                spin: spec.timing.spin ?? GroupTiming.spin(ranksHere: members.filter { Self.machine($0.hostID) == Self.machine(me.hostID) }.count, threadsPerRank: spec.threads))
            return TensorParallelGroup(collective: collective, members: members, overTCP: Set(sockets.keys), geometry: geometry, leader: spec.leader, token: token, server: server)
        } catch {
            server?.cancel()
            throw error
        }
    }
}

extension PendingRank {
    /// The machine of a host id (`machine/namespace[/tcp-…]`): ranks in
    /// other network namespaces, or on tcp by choice, still share its cores.
    static func machine(_ hostID: String) -> Substring { hostID.prefix { $0 != "/" } }
}

/// Runs blocking work on a thread of its own, off the concurrency pool.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
