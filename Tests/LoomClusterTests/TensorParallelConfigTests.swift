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
        let alone = try #require(try parse("    role: mixed").workers.first)
        #expect(alone.tensorParallel == 1 && alone.groupPort == nil)
    }

    @Test func whatAGroupCannotBeIsRefusedByKey() {
        #expect(refusal("    role: decode\n    tensor_parallel: 2\n    fabric_provider: tcp;ofi_rxm").contains("workers[0].tensor_parallel needs no fabric_provider"))
        #expect(refusal("    role: mixed\n    tp_port: 9500").contains("workers[0].tp_port needs tensor_parallel of 2 or more"))
        #expect(refusal("    role: mixed\n    tensor_parallel: 0").contains("tensor_parallel"))
        #expect(refusal("    role: mixed\n    tensor_parallel: 2\n    tp_port: 9001").contains("already used by the router's RPC port"))
    }
}
