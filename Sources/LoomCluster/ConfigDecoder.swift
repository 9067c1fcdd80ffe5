import Foundation
import LoomProtocol
import Yams

/// Walks a composed config document into a `ClusterConfig`, checking each
/// value as it is read so every error still has the node's position. The
/// cross-entry checks (unique names, free ports) run as entries are read,
/// against tables of what earlier entries claimed.
struct ConfigDecoder {
    static let rootKeys = ["model", "router", "workers", "kvstores", "kvstore", "logs"]
    static let routerKeys = [
        "host", "port", "rpc_port", "policy", "prefix_weight", "disaggregation_threshold",
        "heartbeat_interval_ms", "heartbeat_timeout_ms",
    ]
    static let workerKeys = ["name", "role", "host", "port", "threads", "kv_blocks", "max_running", "cpus", "fabric_provider", "tensor_parallel", "tp_port", "tp_hosts"]
    static let storeKeys = ["name", "host", "port", "dram_mib", "disk_dir", "disk_gib"]
    static let storeClusterKeys = ["replicas", "admission"]

    let file: String
    /// "host:port" → who took it and on which line.
    private var claimedPorts: [String: (owner: String, line: Int)] = [:]
    /// Worker name → the line it was first given on.
    private var names: [String: Int] = [:]

    init(file: String) { self.file = file }

    mutating func decode(_ root: Node) throws(ConfigError) -> ClusterConfig {
        let top = try YAMLSection(root, path: "", mark: root.mark, allowed: Self.rootKeys, file: file)
        let model = try modelPath(top)
        let router = try decodeRouter(top.required("router", top.node("router")), mark: top.keyMark("router"))
        let workers = try decodeWorkers(top)
        let kvstores = try decodeStores(top)
        let logs = resolve(try top.string("logs") ?? ".loom/logs")
        var config = ClusterConfig(file: file, model: model, router: router, workers: workers, kvstores: kvstores, logs: logs)
        config.kvstore = try decodeStoreCluster(top, nodes: kvstores.count)
        return config
    }

    // MARK: Sections

    private mutating func decodeRouter(_ node: Node, mark: Mark?) throws(ConfigError) -> RouterConfig {
        let s = try YAMLSection(node, path: "router", mark: mark, allowed: Self.routerKeys, file: file)
        var router = try RouterConfig(
            port: s.required("port", s.int("port", in: Limits.ports)),
            rpcPort: s.required("rpc_port", s.int("rpc_port", in: Limits.ports))
        )
        if let host = try host(s) { router.host = host }
        if let policy = try s.choice("policy", of: RoutingPolicyName.self) { router.policy = policy }
        if let weight = try s.double("prefix_weight", in: Limits.prefixWeight) { router.prefixWeight = weight }
        if let threshold = try s.int("disaggregation_threshold", in: Limits.disaggregationThreshold) {
            router.disaggregationThreshold = threshold
        }
        let interval = try s.int("heartbeat_interval_ms", in: Limits.heartbeatIntervalMs) ?? 500
        let timeout = try s.int("heartbeat_timeout_ms", in: Limits.heartbeatTimeoutMs) ?? 3000
        // A timeout within one interval declares healthy workers dead between
        // two of their heartbeats.
        guard timeout > interval else {
            let culprit = s.keyMark("heartbeat_timeout_ms") != nil ? "heartbeat_timeout_ms" : "heartbeat_interval_ms"
            throw s.error(.outOfRange, s.valueMark(culprit),
                          "router.heartbeat_timeout_ms (\(timeout)) must be longer than router.heartbeat_interval_ms (\(interval))")
        }
        router.heartbeatInterval = .milliseconds(interval)
        router.heartbeatTimeout = .milliseconds(timeout)
        try claim(router.port, on: router.host, by: "the router's HTTP port", s, key: "port")
        try claim(router.rpcPort, on: router.host, by: "the router's RPC port", s, key: "rpc_port")
        return router
    }

    private mutating func decodeWorkers(_ top: YAMLSection) throws(ConfigError) -> [WorkerConfig] {
        let node = try top.required("workers", top.node("workers"))
        guard let items = node.sequence else {
            throw top.error(.wrongType, node.mark, "workers must be a list of workers, got \(YAMLSection.describe(node))")
        }
        guard !items.isEmpty else {
            throw top.error(.missingKey, top.keyMark("workers"), "workers must list at least one worker")
        }
        var workers: [WorkerConfig] = []
        for (index, item) in items.enumerated() {
            let worker = try decodeWorker(item, index: index)
            // A prefill worker writes KV the way the decode worker reserved
            // it, so a cluster with two ways would fail per request.
            if let first = workers.first, worker.fabricProvider != first.fabricProvider {
                throw top.error(.invalidValue, items[index].mark,
                                "workers[\(index)].fabric_provider must be the same on every worker: '\(worker.fabricProvider?.rawValue ?? "none")' here, '\(first.fabricProvider?.rawValue ?? "none")' on worker \(first.name)")
            }
            workers.append(worker)
        }
        guard workers.contains(where: { WorkerRole.decodeCapable.contains($0.role) }) else {
            throw top.error(.noDecodeWorker, top.keyMark("workers"),
                            "workers needs at least one worker with role decode or mixed: requests have nowhere to decode")
        }
        return workers
    }

    private mutating func decodeWorker(_ node: Node, index: Int) throws(ConfigError) -> WorkerConfig {
        let s = try YAMLSection(node, path: "workers[\(index)]", mark: node.mark, allowed: Self.workerKeys, file: file)
        let name = try workerName(s)
        var worker = try WorkerConfig(
            name: name,
            role: s.required("role", s.choice("role", among: WorkerRole.workerRoles)),
            port: s.required("port", s.int("port", in: Limits.ports))
        )
        if let host = try host(s) { worker.host = host }
        if let threads = try s.int("threads", in: Limits.threads) { worker.threads = threads }
        if let blocks = try s.int("kv_blocks", in: Limits.kvBlocks) { worker.kvBlocks = blocks }
        if let running = try s.int("max_running", in: Limits.maxRunning) { worker.maxRunning = running }
        worker.cpus = try cpuList(s)
        if let provider = try s.string("fabric_provider"), let why = FabricProvider.refused[provider] {
            throw s.error(.invalidValue, s.valueMark("fabric_provider"), "\(s.qualified("fabric_provider")) '\(provider)' is not supported: \(why)")
        }
        worker.fabricProvider = try s.choice("fabric_provider", of: FabricProvider.self)
        try claim(worker.port, on: worker.host, by: "worker \(name)", s, key: "port")
        try decodeGroup(s, into: &worker)
        return worker
    }

    /// `tensor_parallel: N` makes the worker a group of N rank processes on
    /// its host; rank 0 takes the others' joins on `tp_port`.
    private mutating func decodeGroup(_ s: YAMLSection, into worker: inout WorkerConfig) throws(ConfigError) {
        worker.tensorParallel = try s.int("tensor_parallel", in: Limits.tensorParallel) ?? 1
        let port = try s.int("tp_port", in: Limits.ports)
        guard worker.tensorParallel > 1 else {
            for key in ["tp_port", "tp_hosts"] where s.node(key) != nil {
                throw s.error(.invalidValue, s.valueMark(key), "\(s.qualified(key)) needs tensor_parallel of 2 or more")
            }
            return
        }
        worker.rankHosts = try rankHosts(s, ranks: worker.tensorParallel)
        guard worker.fabricProvider == nil else {
            throw s.error(.invalidValue, s.valueMark("tensor_parallel"),
                          "\(s.qualified("tensor_parallel")) needs no fabric_provider in this build: a group's KV moves over shm and tcp only")
        }
        worker.groupPort = port ?? worker.port + 1
        try claim(worker.groupPort!, on: worker.host, by: "worker \(worker.name)'s tensor-parallel group", s, key: port == nil ? "tensor_parallel" : "tp_port")
    }

    /// `tp_hosts`: where ranks 1..<N run, one host each (none: all on the
    /// worker's host).
    private func rankHosts(_ s: YAMLSection, ranks: Int) throws(ConfigError) -> [String] {
        guard let node = s.node("tp_hosts") else { return [] }
        let hosts = node.sequence?.compactMap { $0.scalar?.string } ?? []
        guard node.sequence != nil, hosts.count == node.sequence!.count else {
            throw s.error(.wrongType, s.valueMark("tp_hosts"), "\(s.qualified("tp_hosts")) must be a list of host names, got \(YAMLSection.describe(node))")
        }
        guard hosts.count == ranks - 1, !hosts.contains(where: \.isEmpty) else {
            throw s.error(.invalidValue, s.valueMark("tp_hosts"), "\(s.qualified("tp_hosts")) lists \(hosts.count) hosts; it needs one for each of ranks 1..<\(ranks)")
        }
        return hosts
    }

    private mutating func decodeStores(_ top: YAMLSection) throws(ConfigError) -> [StoreNodeConfig] {
        guard let node = try top.node("kvstores") else { return [] }
        guard let items = node.sequence else {
            throw top.error(.wrongType, node.mark, "kvstores must be a list of store nodes, got \(YAMLSection.describe(node))")
        }
        var stores: [StoreNodeConfig] = []
        for (index, item) in items.enumerated() {
            let s = try YAMLSection(item, path: "kvstores[\(index)]", mark: item.mark, allowed: Self.storeKeys, file: file)
            let name = try workerName(s)
            var store = try StoreNodeConfig(
                name: name, port: s.required("port", s.int("port", in: Limits.ports)),
                dramMiB: s.required("dram_mib", s.int("dram_mib", in: Limits.dramMiB)))
            if let host = try host(s) { store.host = host }
            store.diskDir = try s.string("disk_dir").map(resolve)
            if let gib = try s.double("disk_gib", in: Limits.diskGiB) { store.diskGiB = gib }
            try claim(store.port, on: store.host, by: "store node \(name)", s, key: "port")
            stores.append(store)
        }
        return stores
    }

    private func decodeStoreCluster(_ top: YAMLSection, nodes: Int) throws(ConfigError) -> StoreClusterConfig {
        guard let node = top.node("kvstore") else { return StoreClusterConfig() }
        let s = try YAMLSection(node, path: "kvstore", mark: top.keyMark("kvstore"), allowed: Self.storeClusterKeys, file: file)
        var settings = StoreClusterConfig()
        if let replicas = try s.int("replicas", in: Limits.replicas) {
            // More copies than nodes cannot be placed on distinct nodes.
            guard replicas <= max(1, nodes) else {
                throw s.error(.outOfRange, s.valueMark("replicas"),
                              "kvstore.replicas is \(replicas) but kvstores lists \(nodes) store node\(nodes == 1 ? "" : "s"); each copy needs a node of its own")
            }
            settings.replicas = replicas
        }
        if let admission = try s.choice("admission", of: DiskAdmission.self) { settings.admission = admission }
        return settings
    }

    // MARK: Values

    private mutating func workerName(_ s: YAMLSection) throws(ConfigError) -> String {
        let name = try s.required("name", s.string("name"))
        let mark = s.valueMark("name")
        // Names become process names, log file names and Kubernetes object
        // names, hence a DNS label's alphabet and length.
        let allowed = name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        guard allowed, (1...63).contains(name.count) else {
            throw s.error(.invalidValue, mark, "\(s.qualified("name")) must be 1 to 63 characters of a-z, 0-9 and '-', got '\(name)'")
        }
        if let line = names[name] {
            throw s.error(.duplicateName, mark, "\(s.qualified("name")) '\(name)' is already the name of the worker or store node on line \(line)")
        }
        names[name] = mark?.line ?? 0
        return name
    }

    private func host(_ s: YAMLSection) throws(ConfigError) -> String? {
        guard let host = try s.string("host") else { return nil }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else {
            throw s.error(.invalidValue, s.valueMark("host"), "\(s.qualified("host")) must be a host name or address, got '\(host)'")
        }
        return host
    }

    /// A `taskset --cpu-list` value: comma-separated CPUs or ascending ranges.
    private func cpuList(_ s: YAMLSection) throws(ConfigError) -> String? {
        guard let list = try s.string("cpus") else { return nil }
        let valid = list.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { item in
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(bounds.count), bounds.allSatisfy({ ($0 ?? -1) >= 0 }) else { return false }
            return bounds.count == 1 || bounds[0]! <= bounds[1]!
        }
        guard valid else {
            throw s.error(.invalidValue, s.valueMark("cpus"), "\(s.qualified("cpus")) must be a CPU list like 0, 2-3 or 0,4-5, got '\(list)'")
        }
        return list
    }

    private func modelPath(_ top: YAMLSection) throws(ConfigError) -> String? {
        guard let model = try top.string("model") else { return nil }
        let path = resolve(model)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue else {
            throw top.error(.modelNotFound, top.valueMark("model"), "model file '\(path)' does not exist")
        }
        return path
    }

    /// Two processes on one host cannot listen on one port; hosts are
    /// compared as written, except that localhost is 127.0.0.1.
    private mutating func claim(_ port: Int, on host: String, by owner: String, _ s: YAMLSection, key: String) throws(ConfigError) {
        let address = "\(host == "localhost" ? "127.0.0.1" : host):\(port)"
        let mark = s.valueMark(key)
        if let taken = claimedPorts[address] {
            throw s.error(.duplicatePort, mark, "\(s.qualified(key)) \(port) on \(host) is already used by \(taken.owner) (line \(taken.line))")
        }
        claimedPorts[address] = (owner, mark?.line ?? 0)
    }

    /// `path` with `~` expanded, relative to the config file's folder.
    private func resolve(_ path: String) -> String {
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent()
        let expanded = NSString(string: path).expandingTildeInPath
        return URL(fileURLWithPath: expanded, relativeTo: folder).standardizedFileURL.path
    }
}
