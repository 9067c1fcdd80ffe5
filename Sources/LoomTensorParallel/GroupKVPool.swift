import Foundation
import LoomProtocol
import LoomTransfer
import LoomWire

extension TensorParallelGroup {
    /// As a follower: tells the leader where this rank's KV pool is, so a
    /// decode group's leader can hand it to prefill workers. Call before
    /// the rank says it is ready (`FollowerRank.init`): the leader reads
    /// the pools once every rank is.
    public func reportKVPool(region: RegionDescriptor, transferHost: String, transferPort: Int, hostID: String) async throws {
        var pool = Loom_Group_KVPool()
        pool.rank = UInt32(collective.value.rank)
        pool.token = token
        pool.region = Data(try region.serialized())
        pool.transferHost = transferHost
        pool.transferPort = UInt32(transferPort)
        pool.hostID = hostID
        _ = try await RPCConnection.withConnection(to: leader, configuration: RPCConfiguration(nodeName: "tp-rank-\(pool.rank)")) { connection in
            try await connection.unary(GroupRPC.kvPool, pool, timeout: .seconds(10)).0
        }
    }

    /// This rank as the group sees it.
    public var rank: Int { collective.value.rank }

    /// The address peers on other hosts reach this rank at ("" for the
    /// leader: its ranks use the address they joined it at).
    public var dataHost: String { members[rank].dataHost }

    /// This rank's host as the group sees it: with `--tp-transport tcp` a
    /// host of its own, so its KV travels over tcp too.
    public var hostID: String { members[rank].hostID }
}
