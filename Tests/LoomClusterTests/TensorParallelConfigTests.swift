import LoomCluster
import Testing

/// `tensor_parallel` and `tp_port` on a worker entry.
@Suite struct TensorParallelConfigTests {
    func parse(_ worker: String) throws -> ClusterConfig {
        try ClusterConfig.parse(yaml: """
            router:
              port: 9000
              rpc_port: 9001
            workers:
              - name: group-0
                port: 9010
            \(worker)
            """, file: "cluster.yaml")
    }

    func refusal(_ worker: String) -> String {
        do {
            _ = try parse(worker)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test func aGroupTakesItsRanksAndAJoinPortBesideItsOwn() throws {
        let worker = try #require(try parse("    role: mixed\n    tensor_parallel: 3").workers.first)
        #expect(worker.tensorParallel == 3 && worker.groupPort == 9011)
        let placed = try #require(try parse("    role: mixed\n    tensor_parallel: 2\n    tp_port: 9500").workers.first)
        #expect(placed.groupPort == 9500)
        let decode = try #require(try parse("    role: decode\n    tensor_parallel: 3").workers.first)
        #expect(decode.role == .decode && decode.tensorParallel == 3, "prefill and decode workers can be groups")
        let spread = try #require(try parse("    role: mixed\n    tensor_parallel: 3\n    tp_hosts: [10.0.0.2, 10.0.0.3]").workers.first)
        #expect((0..<3).map { spread.host(ofRank: $0) } == ["127.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(decode.host(ofRank: 2) == "127.0.0.1", "without tp_hosts every rank runs on the worker's host")
        let alone = try #require(try parse("    role: mixed").workers.first)
        #expect(alone.tensorParallel == 1 && alone.groupPort == nil)
    }

    @Test func whatAGroupCannotBeIsRefusedByKey() {
        #expect(refusal("    role: decode\n    tensor_parallel: 2\n    fabric_provider: tcp;ofi_rxm").contains("workers[0].tensor_parallel needs no fabric_provider"))
        #expect(refusal("    role: mixed\n    tp_port: 9500").contains("workers[0].tp_port needs tensor_parallel of 2 or more"))
        #expect(refusal("    role: mixed\n    tp_hosts: [a]").contains("workers[0].tp_hosts needs tensor_parallel of 2 or more"))
        #expect(refusal("    role: mixed\n    tensor_parallel: 3\n    tp_hosts: [a]").contains("workers[0].tp_hosts lists 1 hosts; it needs one for each of ranks 1..<3"))
        #expect(refusal("    role: mixed\n    tensor_parallel: 2\n    tp_hosts: a").contains("workers[0].tp_hosts must be a list of host names"))
        #expect(refusal("    role: mixed\n    tensor_parallel: 0").contains("tensor_parallel"))
        #expect(refusal("    role: mixed\n    tensor_parallel: 2\n    tp_port: 9001").contains("already used by the router's RPC port"))
    }
}
