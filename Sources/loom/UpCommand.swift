import ArgumentParser
import Foundation
import LoomCluster
import LoomModel
import LoomWire
import Logging
import ServiceLifecycle

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a whole Loom cluster on this machine from a config: router, workers and store nodes as child processes.")

    @Option(name: .long, help: "Cluster config (YAML).")
    var config = "Configs/local.yaml"

    @Option(name: .long, help: "Seconds to wait for every process to become healthy.")
    var startupTimeout = 300

    func run() async throws {
        let cluster = try ClusterConfig.loadForCommandLine(config)
        let model: String
        do {
            model = try ModelLocator.resolve(cluster.model)
        } catch let error as GGUFError {
            throw ValidationError("\(error.message) (set 'model:' in \(config) or LOOM_MODEL)")
        }
        try FileManager.default.createDirectory(atPath: cluster.logs, withIntermediateDirectories: true)
        for line in cluster.remoteRanks() { FileHandle.standardError.write(Data("loom up: \(line)\n".utf8)) }
        let url = "http://\(cluster.router.host):\(cluster.router.port)"
        let children = Children()
        let launches = cluster.launches()
        let child = { ChildProcess(launch: $0, executable: Self.executablePath, logs: cluster.logs, children: children) }
        // Store nodes stop with the workers: both leave the router before it stops.
        let router = child(launches.router), members = (launches.workers + launches.stores).map(child)
        let readiness = Readiness(
            url: url, expected: cluster.workers.map(\.name) + cluster.kvstores.map(\.name), children: children, timeout: .seconds(startupTimeout),
            banner: Self.banner(url: url, cluster: cluster, model: model))
        var logger = Logger(label: "loom.up")
        logger.logLevel = .warning
        // A graceful shutdown stops the services in reverse order: the
        // readiness watch, then every worker at once (they drain and leave
        // while the router still runs), then the router.
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: RouterProcess(child: router), successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: WorkerProcesses(workers: members), successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: readiness, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { FileHandle.standardError.write(Data("loom up: stopped \(members.count + 1) processes\n".utf8)) }
        try await group.run()
    }

    /// This executable, so children run the same build.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func banner(url: String, cluster: ClusterConfig, model: String) -> String {
        let name = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let workers = cluster.workers.map { w in
            "\(w.name) (\(w.role.rawValue)\(w.tensorParallel > 1 ? ", \(w.tensorParallel) ranks" : ""), \(w.host):\(w.port))"
        }.joined(separator: ", ")
        let stores = cluster.kvstores.map { store in
            let disk = store.diskDir.map { ", disk \(String(format: "%g", store.diskGiB)) GiB in \($0)" } ?? ""
            return "\(store.name) (\(store.dramMiB) MiB\(disk), \(store.host):\(store.port))"
        }.joined(separator: ", ")
        return """
        loom up: cluster ready at \(url)
          workers: \(workers)\(stores.isEmpty ? "" : "\n  kvstore: \(stores)")
          logs:    \(cluster.logs)
          status:  loomctl --router \(url) status\(stores.isEmpty ? "" : "\n  cache:   loomctl --router \(url) cache")
          try:     curl -s \(url)/v1/chat/completions -H 'Content-Type: application/json' \\
                     -d '{"model":"\(name)","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":48}'
        Ctrl-C stops every process.
        """
    }
}

extension ClusterConfig {
    /// The router, each worker and each store node as `loom up` starts
    /// them: each child reads this same validated config file and picks its
    /// own entry by name, so nothing is turned back into command-line strings.
    func launches() -> (router: Launch, workers: [Launch], stores: [Launch]) {
        let file = URL(fileURLWithPath: self.file).standardizedFileURL.path
        return (Launch(name: "router", cpus: nil, arguments: ["router", "--config", file]),
                workers.flatMap { w in
                    // A tensor-parallel worker's other ranks join it by
                    // themselves; those on other hosts are started there.
                    [Launch(name: w.name, cpus: w.cpus, arguments: ["worker", "--config", file, "--name", w.name])]
                        + (1..<max(1, w.tensorParallel)).filter { w.host(ofRank: $0) == w.host }.map { rank in
                            Launch(name: "\(w.name)-rank\(rank)", cpus: w.cpus, arguments: ["worker", "--config", file, "--name", w.name, "--tp-rank", "\(rank)"])
                        }
                },
                kvstores.map { Launch(name: $0.name, cpus: nil, arguments: ["kvstore", "--config", file, "--name", $0.name]) })
    }
}

extension ClusterConfig {
    /// How to start each rank that `tp_hosts` puts on another host: the
    /// cluster is ready only once they have joined.
    func remoteRanks() -> [String] {
        let file = URL(fileURLWithPath: self.file).standardizedFileURL.path
        return workers.flatMap { w in
            (1..<max(1, w.tensorParallel)).filter { w.host(ofRank: $0) != w.host }.map { rank in
                "start rank \(rank) of \(w.name) on \(w.host(ofRank: rank)) (this config at the same path there): loom worker --config \(file) --name \(w.name) --tp-rank \(rank)"
            }
        }
    }
}
