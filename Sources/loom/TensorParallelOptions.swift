import ArgumentParser
import Foundation
import LoomTensorParallel
import LoomWire

/// Where this process stands in a tensor-parallel group: from the flags,
/// or on Kubernetes from a LeaderWorkerSet's environment.
struct TensorParallelOptions: ParsableArguments {
    static let defaultPort = 7071

    @Option(name: .long, help: "Ranks in this worker's tensor-parallel group (default: 1, or $LWS_GROUP_SIZE).")
    var tpSize: Int?

    @Option(name: .long, help: "This process's rank: 0 is the worker the router sees; the others compute their shard of its steps (default: 0, or $LWS_WORKER_INDEX).")
    var tpRank: Int?

    @Option(name: .long, help: ArgumentHelp(
        "The group's addresses in rank order; every rank joins the first, where rank 0 listens (default: $LWS_LEADER_ADDRESS:\(defaultPort)).",
        valueName: "host:port,..."))
    var tpPeers: String?

    @Option(name: .long, help: "Seconds the ranks wait for each other at start-up before giving up.")
    var tpJoinSeconds: Int = 60

    @Option(name: .long, help: "How this rank reaches its peers: automatic (shared memory on this host, tcp to other hosts) or tcp (tcp to every peer, as if alone on its host).")
    var tpTransport: GroupTransport = .automatic

    /// The group, or nil for a worker of one process.
    func spec(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GroupSpec? {
        let lws = Self.lws(environment)
        let size = tpSize ?? lws?.size ?? 1
        let rank = tpRank ?? lws?.rank ?? 0
        guard size > 1 || rank > 0 else {
            if tpPeers != nil { throw ValidationError("--tp-peers needs --tp-size of 2 or more") }
            return nil
        }
        guard size >= 2 else { throw ValidationError("--tp-size must be at least 2 for a group (got \(size))") }
        guard (0..<size).contains(rank) else { throw ValidationError("--tp-rank must be in 0..<\(size) (got \(rank))") }
        guard (1...3600).contains(tpJoinSeconds) else { throw ValidationError("--tp-join-seconds must be in 1...3600") }
        let peers = try tpPeers.map(Self.parse) ?? lws.map { [$0.leader] }
        guard let peers, let leader = peers.first else {
            throw ValidationError("--tp-peers is needed with --tp-size \(size): the leader's host:port first (or run under a LeaderWorkerSet, which sets LWS_LEADER_ADDRESS)")
        }
        guard peers.count == 1 || peers.count == size else {
            throw ValidationError("--tp-peers lists \(peers.count) addresses for a group of \(size); give the leader's alone, or one per rank")
        }
        return GroupSpec(size: size, rank: rank, leader: leader, joinTimeout: .seconds(tpJoinSeconds), transport: tpTransport)
    }

    static func parse(_ list: String) throws -> [RPCAddress] {
        try list.split(separator: ",").map { entry in
            guard let address = RPCAddress(hostPort: String(entry.trimmingCharacters(in: .whitespaces))) else {
                throw ValidationError("--tp-peers: '\(entry)' is not host:port")
            }
            return address
        }
    }

    /// A LeaderWorkerSet's group: its size, this pod's index, and the
    /// leader's address (a name, without a port).
    static func lws(_ environment: [String: String]) -> (size: Int, rank: Int, leader: RPCAddress)? {
        guard let size = environment["LWS_GROUP_SIZE"].flatMap(Int.init),
              let rank = environment["LWS_WORKER_INDEX"].flatMap(Int.init),
              let leader = environment["LWS_LEADER_ADDRESS"], !leader.isEmpty else { return nil }
        return (size, rank, RPCAddress(hostPort: leader) ?? .tcp(host: leader, port: defaultPort))
    }
}

extension GroupTransport: ExpressibleByArgument {}

/// `loom generate` and `loom bench model`'s group: N ranks for one run,
/// started here as children, or started by hand (on other hosts) and
/// joining this process at `--tp-peers`.
struct LocalGroupOptions: ParsableArguments {
    @Option(name: .long, help: "Ranks of a tensor-parallel group: this process is rank 0 and starts the others on this host, each with --threads threads (1: one process, no group).")
    var tp: Int = 1

    @Option(name: .long, help: ArgumentHelp(
        "With --tp: listen for the other ranks at this address instead of starting them; start each with `loom worker --name NAME --model M --tp-size N --tp-rank R --tp-peers host:port`, on any host that reaches it (the command for each is printed).",
        valueName: "host:port"))
    var tpPeers: RPCAddress?

    @Option(name: .long, help: "With --tp: automatic (shared memory between ranks on one host, tcp across hosts) or tcp (every rank as if alone on its host).")
    var tpTransport: GroupTransport = .automatic

    @Option(name: .long, help: "Seconds to wait for the other ranks to join.")
    var tpJoinSeconds: Int = 60

    func validate() throws {
        guard tp >= 1 else { throw ValidationError("--tp must be at least 1") }
        guard tp > 1 || tpPeers == nil else { throw ValidationError("--tp-peers needs --tp of 2 or more") }
        guard (1...3600).contains(tpJoinSeconds) else { throw ValidationError("--tp-join-seconds must be in 1...3600") }
    }
}
