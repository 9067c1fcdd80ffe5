import Foundation
import LoomProtocol
import LoomWire
import Yams

/// A validated cluster description: where the router listens and which
/// worker processes to start. Produced only by `load`/`parse`, which reject
/// anything that could not run, so holders of a `ClusterConfig` need no
/// checks of their own.
public struct ClusterConfig: Sendable, Equatable {
    /// The file the config came from, as given.
    public var file: String
    /// The model file, resolved against the config's folder; nil when the
    /// config leaves it to the caller (the `LOOM_MODEL` environment).
    public var model: String?
    public var router: RouterConfig
    public var workers: [WorkerConfig]
    /// KV-cache store nodes (`loom kvstore`); none when the list is left out.
    public var kvstores: [StoreNodeConfig] = []
    /// How the store nodes work together (the `kvstore:` section).
    public var kvstore = StoreClusterConfig()
    /// Folder for process logs, resolved against the config's folder.
    public var logs: String

    public func workers(roles: Set<WorkerRole>) -> [WorkerConfig] {
        workers.filter { roles.contains($0.role) }
    }

    /// Reads and validates the config at `path`.
    public static func load(path: String) throws(ConfigError) -> ClusterConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(.unreadable, file: path, line: 0, column: 0, "cannot read the config: \(error.localizedDescription)")
        }
        return try parse(yaml: text, file: path)
    }

    /// Validates `yaml` as if read from `file`, which names the file in
    /// errors and anchors relative paths (`model`, `logs`).
    public static func parse(yaml: String, file: String) throws(ConfigError) -> ClusterConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw syntaxError(error, yaml: yaml, file: file)
        }
        guard let root else {
            throw ConfigError(.missingKey, file: file, line: 1, column: 1, "the config is empty; it needs at least 'router' and 'workers'")
        }
        var decoder = ConfigDecoder(file: file)
        return try decoder.decode(root)
    }
}

/// Where the router listens and how it routes.
public struct RouterConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    /// The OpenAI-compatible HTTP API.
    public var port: Int
    /// Cluster RPC: workers register and send heartbeats here.
    public var rpcPort: Int
    public var policy = RoutingPolicyName.prefixAware
    public var prefixWeight = 1.0
    /// Uncached prompt tokens below which the decode worker prefills locally.
    public var disaggregationThreshold = 32
    public var heartbeatInterval = Duration.milliseconds(500)
    public var heartbeatTimeout = Duration.milliseconds(3000)

    public init(port: Int, rpcPort: Int) {
        self.port = port
        self.rpcPort = rpcPort
    }

    public var rpcAddress: RPCAddress { .tcp(host: host, port: rpcPort) }
}

/// One worker process the cluster runs.
public struct WorkerConfig: Sendable, Equatable {
    public var name: String
    public var role: WorkerRole
    public var host = "127.0.0.1"
    /// The worker's RPC port.
    public var port: Int
    /// Compute threads.
    public var threads = 1
    /// KV blocks in the worker's pool.
    public var kvBlocks = 1024
    /// Most sequences in one running batch.
    public var maxRunning = 16
    /// A `taskset` CPU list (`0`, `2-3`, `0,4-5`) to pin the process to.
    public var cpus: String?
    /// KV blocks travel between workers as libfabric RMA writes through
    /// this provider; nil: `shm` on one host, `tcp` across hosts.
    public var fabricProvider: FabricProvider?
    /// Rank processes of this worker's tensor-parallel group (1: none).
    public var tensorParallel = 1
    /// Where rank 0 takes its ranks' joins (default: `port` + 1).
    public var groupPort: Int?
    /// Where ranks 1..<N run (`tp_hosts`; empty: all on `host`). `loom up`
    /// starts the ranks on `host` and tells how to start the others.
    public var rankHosts: [String] = []

    /// The host rank `rank` of this worker's group runs on.
    public func host(ofRank rank: Int) -> String { rank == 0 || rankHosts.isEmpty ? host : rankHosts[rank - 1] }

    public init(name: String, role: WorkerRole, port: Int) {
        self.name = name
        self.role = role
        self.port = port
    }

    public var id: WorkerID { WorkerID(name) }
    public var rpcAddress: RPCAddress { .tcp(host: host, port: port) }
}

/// One KV-cache store node the cluster runs.
public struct StoreNodeConfig: Sendable, Equatable {
    public var name: String
    public var host = "127.0.0.1"
    /// The node's RPC port (and its `tcp` transfer target's).
    public var port: Int
    /// DRAM for blocks, in MiB.
    public var dramMiB: Int
    /// The disk tier's folder (resolved against the config's folder) and
    /// size; no disk tier when `diskDir` is nil.
    public var diskDir: String?
    public var diskGiB: Double = 16

    public init(name: String, port: Int, dramMiB: Int, diskDir: String? = nil) {
        self.name = name
        self.port = port
        self.dramMiB = dramMiB
        self.diskDir = diskDir
    }
}

/// The cluster-wide settings of the KV-cache store.
public struct StoreClusterConfig: Sendable, Equatable {
    /// How many distinct store nodes hold each block.
    public var replicas = 1
    /// Which blocks leaving a node's DRAM go to its disk tier.
    public var admission = DiskAdmission.afterFirstReuse

    public init(replicas: Int = 1, admission: DiskAdmission = .afterFirstReuse) {
        self.replicas = replicas
        self.admission = admission
    }
}

/// The libfabric providers a worker's KV transfers may use. `tcp;ofi_rxm`
/// runs anywhere (and is what runs on these machines); `efa` and
/// `verbs;ofi_rxm` need their NICs.
///
/// Not libfabric's `shm`: it never completes a write the target refused,
/// and keeps the writer-target pair's one command slot for it, so a single
/// KV write that arrives after its lease wedges that pair for good
/// (`FabricTests.shmRefusalWedgesThePair`). Workers on one host already
/// share memory without libfabric (Loom's own `shm` backend).
public enum FabricProvider: String, Sendable, CaseIterable {
    case tcp = "tcp;ofi_rxm"
    case verbs = "verbs;ofi_rxm"
    case efa

    /// Why `name` is no provider a worker can use, as a person would fix it.
    public static func refusal(of name: String) -> String {
        if let why = refused[name] { return "'\(name)' is not supported: \(why)" }
        return "must be one of \(allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'"
    }

    static let refused = ["shm": "libfabric's shm provider wedges a writer and its target after one refused write (a KV write that outlived its lease); leave fabric_provider out and workers on one host use Loom's own shared-memory backend"]
}
