import LoomEngine
import LoomWire
import Testing
@testable import LoomWorker

@Suite("Worker: which store nodes hold a block")
struct StoreRoutingTests {
    let nodes = (0..<4).map { StoreNodeAddress(name: "kvstore-\($0)", address: .tcp(host: "127.0.0.1", port: 7620 + $0)) }
    let blocks = (1...200).map { BlockHash(rawValue: UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }

    @Test func replicasAreDistinctNodesAndEveryWorkerAgrees() {
        let one = StoreRouting(nodes: nodes, replicas: 2), other = StoreRouting(nodes: nodes.reversed(), replicas: 2)
        for block in blocks {
            let holders = one.holders(of: block)
            #expect(holders.count == 2 && Set(holders).count == 2)
            #expect(holders.map { nodes[$0].name } == other.holders(of: block).map { other.nodes[$0].name },
                    "placement depends on node names, not the order they were listed in")
        }
        #expect(StoreRouting(nodes: Array(nodes.prefix(1)), replicas: 3).holders(of: blocks[0]) == [0], "never more copies than nodes")
    }

    @Test func losingANodeMovesOnlyTheBlocksItHeld() {
        let all = StoreRouting(nodes: nodes), fewer = StoreRouting(nodes: Array(nodes.dropLast()))
        for block in blocks {
            let before = nodes[all.holders(of: block)[0]].name
            let after = fewer.nodes[fewer.holders(of: block)[0]].name
            if before != "kvstore-3" { #expect(after == before) }
        }
    }

    @Test func aNodeThatFailedIsReadLastUntilItsQuarantineEnds() async throws {
        let routing = StoreRouting(nodes: nodes, replicas: 2, quarantine: .milliseconds(100))
        let block = blocks[0]
        let holders = routing.holders(of: block)
        routing.failed(holders[0])
        #expect(routing.readOrder(for: block) == [holders[1], holders[0]])
        #expect(routing.isFailing(holders[0]))
        try await Task.sleep(for: .milliseconds(150))
        #expect(routing.readOrder(for: block) == holders)
        routing.failed(holders[1])
        routing.answered(holders[1])
        #expect(routing.readOrder(for: block) == holders, "an answer ends the quarantine")
    }
}
