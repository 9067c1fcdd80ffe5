import ArgumentParser
import Foundation
import LoomCluster
import LoomModel
import LoomPeer
import LoomWire

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a whole Loom cluster on this machine from a config: router and workers as child processes.")

    @Option(name: .long, help: "Cluster config (YAML).")
    var config = "Configs/local.yaml"

    @Option(name: .long, help: "Seconds to wait for every process to become healthy.")
    var startupTimeout = 300

    func run() async throws {
        let cluster: ClusterConfig
        do {
            cluster = try ClusterConfig.load(path: config)
        } catch {
            throw ValidationError("\(error)")
        }
        let model: String
        do {
            model = try ModelLocator.resolve(cluster.model)
        } catch let error as GGUFError {
            throw ValidationError("\(error.message) (set 'model:' in \(config) or LOOM_MODEL)")
        }
        try FileManager.default.createDirectory(atPath: cluster.logs, withIntermediateDirectories: true)
        let supervisor = Supervisor(executable: Self.executablePath, logs: cluster.logs)
        // Also when startup fails or the router dies: no orphans left
        // holding ports and shared memory.
        defer { supervisor.stopAll() }
        try await runUntilSignalled {
            try await supervisor.start(cluster.launches(model: model))
            let url = "http://\(cluster.router.host):\(cluster.router.port)"
            try await HealthWatch(url: url, expected: cluster.workers.map(\.name), supervisor: supervisor)
                .waitUntilHealthy(timeout: .seconds(startupTimeout))
            announce(Self.banner(url: url, cluster: cluster, model: model))
            try await supervisor.watch()
        }
    }

    /// This executable, so children run the same build.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func banner(url: String, cluster: ClusterConfig, model: String) -> String {
        let name = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let workers = cluster.workers.map { "\($0.name) (\($0.role.rawValue), \($0.host):\($0.port))" }.joined(separator: ", ")
        return """
        loom up: cluster ready at \(url)
          workers: \(workers)
          logs:    \(cluster.logs)
          status:  loomctl --router \(url) status
          try:     curl -s \(url)/v1/chat/completions -H 'Content-Type: application/json' \\
                     -d '{"model":"\(name)","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":48}'
        Ctrl-C stops every process.
        """
    }
}

extension ClusterConfig {
    /// The command lines of the router and each worker.
    func launches(model: String) -> [Launch] {
        let r = router
        var launches = [Launch(name: "router", cpus: nil, arguments: [
            "router", "--model", model, "--host", r.host, "--port", "\(r.port)", "--rpc-port", "\(r.rpcPort)",
            "--policy", r.policy.rawValue, "--prefix-weight", "\(r.prefixWeight)",
            "--disaggregation-threshold", "\(r.disaggregationThreshold)",
            "--heartbeat-interval-ms", "\(r.heartbeatInterval.wholeMilliseconds)", "--heartbeat-timeout-ms", "\(r.heartbeatTimeout.wholeMilliseconds)",
        ])]
        for w in workers {
            launches.append(Launch(name: w.name, cpus: w.cpus, arguments: [
                "worker", "--model", model, "--name", w.name, "--role", w.role.rawValue, "--host", w.host, "--port", "\(w.port)",
                "--router", "\(r.host):\(r.rpcPort)", "--threads", "\(w.threads)", "--kv-blocks", "\(w.kvBlocks)",
                "--max-running", "\(w.maxRunning)",
            ] + (w.fabricProvider.map { ["--fabric-provider", $0.rawValue] } ?? [])))
        }
        return launches
    }
}
