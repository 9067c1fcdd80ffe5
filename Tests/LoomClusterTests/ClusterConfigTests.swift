import Foundation
import LoomCluster
import LoomProtocol
import Testing

/// The repository's root, found from this file so the test runs from any
/// working directory.
private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite struct ClusterConfigTests {
    @Test func theShippedLocalConfigParses() throws {
        let path = repositoryRoot.appendingPathComponent("Configs/local.yaml").path
        let config = try ClusterConfig.load(path: path)
        #expect(config.model == nil)
        #expect(config.router.host == "127.0.0.1" && config.router.port == 8080 && config.router.rpcPort == 7600)
        #expect(config.router.policy == .prefixAware)
        #expect(config.workers.map(\.name) == ["prefill-0", "decode-0", "decode-1"])
        #expect(config.workers.map(\.role) == [.prefill, .decode, .decode])
        #expect(config.workers.map(\.port) == [7610, 7611, 7612])
        #expect(config.workers.allSatisfy { $0.threads == 1 })
        #expect(config.workers(roles: WorkerRole.decodeCapable).map(\.rpcAddress.hostPort) == ["127.0.0.1:7611", "127.0.0.1:7612"])
        var store = StoreNodeConfig(name: "kvstore-0", port: 7620, dramMiB: 256,
                                    diskDir: repositoryRoot.appendingPathComponent("Configs/.loom/kv").standardizedFileURL.path)
        store.diskGiB = 4
        #expect(config.kvstores == [store], "the local cluster has a store node with a disk tier")
        #expect(config.kvstore == StoreClusterConfig(replicas: 1, admission: .afterFirstReuse))
        #expect(config.logs == repositoryRoot.appendingPathComponent("Configs/.loom/logs").standardizedFileURL.path)
    }

    @Test func omittedKeysTakeTheirDefaults() throws {
        let config = try ClusterConfig.parse(yaml: """
            router:
              port: 9000
              rpc_port: 9001
            workers:
              - name: mixed-0
                role: mixed
                port: 9010
            """, file: "/etc/loom/cluster.yaml")
        #expect(config.router == RouterConfig(port: 9000, rpcPort: 9001))
        #expect(config.router.host == "127.0.0.1" && config.router.policy == .prefixAware)
        #expect(config.router.prefixWeight == 1 && config.router.disaggregationThreshold == 32)
        #expect(config.router.heartbeatInterval == .milliseconds(500) && config.router.heartbeatTimeout == .seconds(3))
        let worker = try #require(config.workers.first)
        #expect(worker == WorkerConfig(name: "mixed-0", role: .mixed, port: 9010))
        #expect(worker.host == "127.0.0.1" && worker.threads == 1 && worker.kvBlocks == 1024)
        #expect(worker.maxRunning == 16 && worker.cpus == nil && worker.fabricProvider == nil)
        #expect(config.logs == "/etc/loom/.loom/logs")
        #expect(config.kvstores.isEmpty && config.kvstore == StoreClusterConfig(replicas: 1, admission: .afterFirstReuse))
        #expect(config.model == nil)
    }

    @Test func everyKeyIsRead() throws {
        let config = try ClusterConfig.parse(yaml: """
            router:
              host: 0.0.0.0
              port: 9000
              rpc_port: 9001
              policy: least-loaded
              prefix_weight: 2.5
              disaggregation_threshold: 0
              heartbeat_interval_ms: 100
              heartbeat_timeout_ms: 250
            workers:
              - name: d-0
                role: decode
                host: gpu-node-2
                port: 9000
                threads: 4
                kv_blocks: 4096
                max_running: 64
                cpus: 0,2-3
                fabric_provider: efa
              - {name: d-1, role: decode, port: 9011, cpus: 1, fabric_provider: efa}
            kvstores:
              - {name: s-0, host: store-1, port: 9020, dram_mib: 512, disk_dir: /var/lib/loom/kv, disk_gib: 0.5}
              - {name: s-1, port: 9021, dram_mib: 64, disk_dir: kv}
            kvstore:
              replicas: 2
              admission: all
            logs: /var/log/loom
            """, file: "/etc/loom/cluster.yaml")
        #expect(config.router.host == "0.0.0.0" && config.router.policy == .leastLoaded)
        #expect(config.router.prefixWeight == 2.5 && config.router.disaggregationThreshold == 0)
        #expect(config.router.heartbeatInterval == .milliseconds(100) && config.router.heartbeatTimeout == .milliseconds(250))
        var expected = WorkerConfig(name: "d-0", role: .decode, port: 9000)
        expected.host = "gpu-node-2"
        expected.threads = 4
        expected.kvBlocks = 4096
        expected.maxRunning = 64
        expected.cpus = "0,2-3"
        expected.fabricProvider = .efa
        #expect(config.workers[0] == expected, "port 9000 is free on another host")
        #expect(config.workers[1].cpus == "1", "a bare number is a CPU list too")
        #expect(config.logs == "/var/log/loom")
        var store = StoreNodeConfig(name: "s-0", port: 9020, dramMiB: 512, diskDir: "/var/lib/loom/kv")
        store.host = "store-1"
        store.diskGiB = 0.5
        #expect(config.kvstores == [store, StoreNodeConfig(name: "s-1", port: 9021, dramMiB: 64, diskDir: "/etc/loom/kv")],
                "a relative disk_dir is resolved against the config's folder; disk_gib defaults to 16")
        #expect(config.kvstore == StoreClusterConfig(replicas: 2, admission: .all))
    }

    @Test func aModelPathIsCheckedAndResolvedAgainstTheConfigsFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loom-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let model = folder.appendingPathComponent("tiny.gguf")
        try Data([0x47, 0x47, 0x55, 0x46]).write(to: model)
        let yaml = """
            model: tiny.gguf
            router: {port: 9000, rpc_port: 9001}
            workers: [{name: d, role: decode, port: 9002}]
            """
        let configPath = folder.appendingPathComponent("cluster.yaml").path
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        let config = try ClusterConfig.load(path: configPath)
        #expect(config.model == model.standardizedFileURL.path)
    }
}
