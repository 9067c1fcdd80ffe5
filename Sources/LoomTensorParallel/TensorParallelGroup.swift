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

    public init(size: Int, rank: Int, leader: RPCAddress, joinTimeout: Duration = .seconds(60), threads: Int = 1, timing: GroupTiming = .init()) {
        self.size = size
        self.rank = rank
        self.leader = leader
        self.joinTimeout = joinTimeout
        self.threads = threads
        self.timing = timing
    }
}

/// A formed group, as one rank holds it: the collective its model's seams
/// run through, and (on the leader) the server that took the joins.
public final class TensorParallelGroup: Sendable {
    public let collective: GroupCollectiveBox
    public let members: [GroupMember]
    /// The leader's, which every rank sizes itself by.
    public let geometry: GroupGeometry
    private let server: Task<Void, Never>?

    fileprivate init(collective: GroupCollective, members: [GroupMember], geometry: GroupGeometry, server: Task<Void, Never>?) {
        self.collective = GroupCollectiveBox(collective)
        self.members = members
        self.geometry = geometry
        self.server = server
    }

    deinit { server?.cancel() }

    /// Registers this rank's region, meets the others through the leader,
    /// and maps their regions. `split` is the split every rank computes for
    /// itself; the leader checks each rank's against its own. The leader
    /// gives `geometry`; the others learn it from the leader.
    public static func form(_ spec: GroupSpec, file: GGUFFile, split: TensorSplit, geometry: GroupGeometry? = nil) async throws -> TensorParallelGroup {
        if let geometry {
            return try await GroupLeader.listen(spec, file: file, split: split, geometry: geometry).form()
        }
        let rank = try PendingRank(spec, file: file, split: split)
        let (members, agreed) = try await join(spec, request: request(rank.me, size: spec.size, model: rank.model, shard: split.shards[spec.rank]))
        return try rank.complete(members: members, geometry: agreed, server: nil)
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
        return r
    }

    static func serveJoins(at address: RPCAddress, roster: GroupRoster, geometry: GroupGeometry) async throws -> (RPCAddress, Task<Void, Never>) {
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
                return member
            }
            reply.geometry = geometry.proto
            return (reply, ByteBuffer())
        }
        let server = try await RPCServer.bind(address, services: services, configuration: RPCConfiguration(nodeName: "tp-leader"))
        return (server.localAddress, Task { try? await server.run() })
    }

    /// Dials the leader until it answers or `joinTimeout` passes: ranks may
    /// start in any order.
    private static func join(_ spec: GroupSpec, request: Loom_Group_JoinRequest) async throws -> ([GroupMember], GroupGeometry) {
        let deadline = ContinuousClock.now + spec.joinTimeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                let reply = try await RPCConnection.withConnection(to: spec.leader, configuration: RPCConfiguration(nodeName: "tp-rank-\(spec.rank)")) { connection in
                    try await connection.unary(GroupRPC.join, request, timeout: deadline - .now).0
                }
                let members = try reply.members.map { m in
                    GroupMember(rank: Int(m.rank), region: try RegionDescriptor(serialized: Array(m.region)), pid: m.pid, host: m.host, hostID: m.hostID)
                }
                return (members, GroupGeometry(reply.geometry))
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

    public static func listen(_ spec: GroupSpec, file: GGUFFile, split: TensorSplit, geometry: GroupGeometry) async throws -> GroupLeader {
        precondition(spec.rank == 0, "rank 0 leads")
        let rank = try PendingRank(spec, file: file, split: split)
        let roster = GroupRoster(expected: .init(size: spec.size, model: rank.model, shards: split.shards.map(\.description)), leader: rank.me)
        let (address, server) = try await TensorParallelGroup.serveJoins(at: spec.leader, roster: roster, geometry: geometry)
        return GroupLeader(address: address, rank: rank, roster: roster, geometry: geometry, server: server, timeout: spec.joinTimeout)
    }

    private init(address: RPCAddress, rank: PendingRank, roster: GroupRoster, geometry: GroupGeometry, server: Task<Void, Never>, timeout: Duration) {
        self.address = address
        self.rank = rank
        self.roster = roster
        self.geometry = geometry
        self.server = server
        self.timeout = timeout
    }

    /// Waits for every rank to join (or the first to be refused).
    public func form() async throws -> TensorParallelGroup {
        do {
            let members = try await roster.waitForAll(timeout: timeout)
            return try rank.complete(members: members, geometry: geometry, server: server)
        } catch {
            // The refused rank's answer is on its way out; let it go first.
            try? await Task.sleep(for: .seconds(1))
            server.cancel()
            throw error
        }
    }
}

/// A rank with its region registered, not yet in a group.
struct PendingRank: Sendable {
    let spec: GroupSpec
    let split: TensorSplit
    let layouts: [GroupRegionLayout]
    let region: RegisteredRegion
    let me: GroupMember
    let model: String

    init(_ spec: GroupSpec, file: GGUFFile, split: TensorSplit) throws {
        let whole = try ModelConfig(gguf: file)
        layouts = (0..<spec.size).map { r in
            GroupRegionLayout(size: spec.size, embedding: whole.embeddingLength, vocabulary: whole.vocabularySize, holdsLogits: r == 0)
        }
        let table = RegionTable(owner: "tp\(spec.rank)-\(getpid())", epoch: UInt64(Date().timeIntervalSince1970 * 1e6))
        region = try SharedMemoryRegion.register(in: table, length: layouts[spec.rank].length)
        me = GroupMember(rank: spec.rank, region: region.descriptor, pid: getpid(), host: ProcessInfo.processInfo.hostName, hostID: HostIdentity.current)
        model = TensorSplit.identity(of: file)
        self.spec = spec
        self.split = split
    }

    func complete(members: [GroupMember], geometry: GroupGeometry, server: Task<Void, Never>?) throws -> TensorParallelGroup {
        if let other = members.first(where: { $0.hostID != me.hostID }) {
            server?.cancel()
            throw TensorParallelError(.mismatch, "rank \(other.rank) runs on \(other.host), another host than rank \(spec.rank) (\(me.host)); this build's all-reduce needs every rank on one host (shm)")
        }
        let collective = try GroupCollective(
            rank: spec.rank, own: region, members: members, vocabularies: split.shards.map(\.vocabulary),
            layouts: layouts,
            spin: spec.timing.spin ?? GroupTiming.spin(ranksHere: members.filter { $0.hostID == me.hostID }.count, threadsPerRank: spec.threads))
        return TensorParallelGroup(collective: collective, members: members, geometry: geometry, server: server)
    }
}
