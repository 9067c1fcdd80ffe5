import Foundation
import Synchronization
import LoomModel
import LoomTesting
import Testing

/// A tensor-parallel worker in a cluster: rank 0 registered with the
/// router and a rank started by hand beside it, real processes over shm.
@Suite(.serialized) struct TensorParallelClusterTests {
    /// Starts `name` as the leader of a group of 2 and its rank 1.
    func startGroup(_ cluster: ClusterHarness, _ name: String, port: Int) throws -> (leader: LoomChild, rank: LoomChild) {
        let (leader, ranks) = try startGroup(cluster, name, size: 2, role: "mixed", port: port)
        return (leader, ranks[0])
    }

    /// Starts `name` as the leader of a group of `size` and its other ranks,
    /// each on a thread of its own: a rank announces itself only once the
    /// whole group has joined.
    func startGroup(_ cluster: ClusterHarness, _ name: String, size: Int, role: String, port: Int = freePort(), transport: String = "automatic") throws -> (leader: LoomChild, ranks: [LoomChild]) {
        let peers = ["--tp-size", "\(size)", "--tp-peers", "127.0.0.1:\(port)", "--tp-join-seconds", "30", "--tp-transport", transport]
        let leader = try cluster.startWorker(name, role: role, extra: peers)
        #expect(leader.announcement.contains("leads a tensor-parallel group of \(size)"), "\(leader.announcement)")
        let started = Mutex<[Int: Result<LoomChild, any Error>]>([:])
        let threads = (1..<size).map { r in
            Thread { [model = cluster.model] in
                let child = Result { try LoomChild("\(name)-\(r)", ["worker", "--model", model, "--name", "\(name)-\(r)", "--threads", "1", "--tp-rank", "\(r)"] + peers) }
                started.withLock { $0[r] = child }
            }
        }
        for thread in threads { thread.start() }
        while started.withLock({ $0.count }) < size - 1 { Thread.sleep(forTimeInterval: 0.05) }
        let ranks = try (1..<size).map { r in try started.withLock { try $0[r]!.get() } }
        for (r, rank) in zip(1..., ranks) { cluster.workers["\(name)-\(r)"] = rank }
        return (leader, ranks)
    }

    /// A prefill group of 2 (of 3 KV heads, rank 0 holds 0 and 1, rank 1
    /// holds 1 and 2) writes into a decode group of 3 (one head each):
    /// every head travels from the first prefill rank that computed it to
    /// the decode rank that holds it, and the decode group continues from
    /// that KV alone. Over shm, then
    /// with every rank on a "host" of its own (tcp).
    @Test(arguments: ["automatic", "tcp"])
    func aPrefillGroupHandsItsKVHeadByHeadToADecodeGroup(transport: String) async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        // Every prompt goes to the prefill group, the second one after the
        // system prompt's blocks the decode group already holds.
        try cluster.startRouter(["--disaggregation-threshold", "1"])
        _ = try startGroup(cluster, "prefill-0", size: 2, role: "prefill", transport: transport)
        _ = try startGroup(cluster, "decode-0", size: 3, role: "decode", transport: transport)
        try await cluster.waitUntilHealthy(["prefill-0", "decode-0"])

        // Questions whose answers one process and groups of 2 and 3 agree
        // on: at a near-tie ("Which river flows through Cairo?") a group
        // may pick the other token, with or without disaggregation.
        let questions = ["What is the capital of France?", "Where is the Eiffel Tower?"]
        for question in questions {
            let messages = chat(question)
            let (status, response) = try await cluster.post("v1/chat/completions", body(messages, maxTokens: 24))
            #expect(status == 200, "\(response)\n\(cluster.logs)")
            let expected = try reference.completion(messages, maxTokens: 24)
            #expect(content(response) == expected, "\(question): \(content(response) ?? "-") vs \(expected)")
        }
        let settled = try await cluster.waitForStatus("decode counters") { s in
            (cluster.worker("decode-0", in: s)?["remote_prefilled_tokens"] as? Int ?? 0) > 0
        }
        let decode = try #require(cluster.worker("decode-0", in: settled))
        let prompts = try questions.map { try reference.prompt(chat($0)).count }
        // The second prompt came after the system prompt's cached blocks.
        #expect((decode["remote_prefilled_tokens"] as? Int ?? 0) > prompts[0] && (decode["remote_prefilled_tokens"] as? Int ?? 0) < prompts[0] + prompts[1], "\(decode)")
        #expect((decode["computed_tokens"] as? Int ?? 0) <= 48, "the decode group computed only generated tokens: \(decode)")
        #expect((settled["decisions"] as? [String: Int])?["remote"] == 2, "\(settled)")

        // A prompt of several chunks: each rank's heads of every chunk,
        // and the prefill answers once its rank 1 has signalled each one.
        let story = Array(repeating: "The river ran past the old mill, under the stone bridge and on towards the sea.", count: 60).joined(separator: " ")
        let long = [ChatMessage(role: "system", content: story), ChatMessage(role: "user", content: "Where did the river run?")]
        let (status, response) = try await cluster.post("v1/chat/completions", body(long, maxTokens: 8))
        #expect(status == 200 && content(response)?.isEmpty == false, "\(response)\n\(cluster.logs)")
        let usage = try #require(response["usage"] as? [String: Any])
        #expect((usage["prompt_tokens"] as? Int ?? 0) > 3 * 256, "four chunks or more: \(usage)")
        // Prefill rank 0 writes head 0 into decode rank 0 and head 1 into
        // rank 1, which with hosts of their own is over tcp.
        let prefill = try #require(cluster.worker("prefill-0", in: settled))
        #expect((prefill["shm_writes"] as? Int ?? 0) > 0, "\(prefill)")
        #expect(((prefill["tcp_writes"] as? Int ?? 0) > 0) == (transport == "tcp"), "\(prefill)")
    }

    /// A prefill group's rank killed while prompts stream in: the group
    /// stops, and each prompt it held is prefilled again elsewhere (here
    /// by the decode worker itself); no request fails.
    @Test func aPrefillGroupLosingARankLosesNoRequest() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter(["--disaggregation-threshold", "1"])
        let (_, ranks) = try startGroup(cluster, "prefill-0", size: 2, role: "prefill")
        try cluster.startWorker("decode-0", role: "decode")
        try await cluster.waitUntilHealthy(["prefill-0", "decode-0"])
        let story = Array(repeating: "The road climbed past the farms and the quiet church to the top of the hill.", count: 40).joined(separator: " ")
        let requests = (0..<6).map { i in
            Task {
                let messages = [ChatMessage(role: "system", content: "\(i): " + story), ChatMessage(role: "user", content: "Where did the road go?")]
                return try await cluster.complete(body(messages, maxTokens: 16))
            }
        }
        _ = try await cluster.waitForStatus("prefill-0 computing") { s in (cluster.worker("prefill-0", in: s)?["computed_tokens"] as? Int ?? 0) > 0 }
        ranks[0].crash()
        for request in requests {
            let completion = try await request.value
            #expect(completion.status == 200 && completion.content?.isEmpty == false, "\(completion.raw)\n\(cluster.logs)")
        }
    }

    @Test func aGroupServesAsOneWorkerWithItsRanksListed() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let (leader, rank) = try startGroup(cluster, "tp-0", port: freePort())
        try await cluster.waitUntilHealthy(["tp-0"])
        let status = try await cluster.status()
        let ranks = try #require(cluster.worker("tp-0", in: status)?["ranks"] as? [[String: Any]])
        #expect(ranks.map { $0["rank"] as? Int } == [0, 1])
        #expect(ranks.map { $0["pid"] as? Int } == [Int(leader.process.processIdentifier), Int(rank.process.processIdentifier)])
        let table = try Tool.run(BuiltExecutable.url("loomctl").path, ["--router", cluster.httpURL.absoluteString, "status"]).output
        #expect(table.contains("mixed tp=2") && table.contains("  rank 1"), "\(table)")
        #expect(ranks.map { $0["link"] as? String } == ["", "shm"])
        let rankRow = try #require(table.split(separator: "\n").first { $0.hasPrefix("  rank 1") })
        #expect(rankRow.contains("shm") && rankRow.contains("127.0.0.1:"), "\(rankRow)")

        var request = body(chat("What is the capital of France?"), maxTokens: 12)
        request["logprobs"] = true
        request["top_logprobs"] = 2
        let (code, object) = try await cluster.post("v1/chat/completions", request)
        #expect(code == 200, "\(object)\n\(cluster.logs)")
        let choice = try #require((object["choices"] as? [[String: Any]])?.first)
        #expect(((choice["message"] as? [String: Any])?["content"] as? String)?.contains("Paris") == true, "\(object)")
        let content = try #require((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
        #expect(content.count == ((object["usage"] as? [String: Any])?["completion_tokens"] as? Int))
        #expect(content.allSatisfy { ($0["top_logprobs"] as? [Any])?.count == 2 })
    }

    /// A rank killed under load: the group stops, the router sees it go
    /// within the heartbeat timeout and moves its requests to the other
    /// worker from the tokens already streamed; then the group comes back
    /// when restarted whole.
    @Test func aRankKilledUnderLoadLosesNoRequestAndTheGroupRestartsWhole() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let port = freePort()
        let (leader, rank) = try startGroup(cluster, "tp-0", port: port)
        try await cluster.waitUntilHealthy(["tp-0"])
        // The group alone takes the requests; the second worker comes up
        // while they run, to take them over.
        let questions = ["Write a long story about a river.", "Write a long story about a city.", "Write a long story about a lake.", "Write a long story about a mountain."]
        let requests = questions.map { question in
            Task { try await cluster.complete(body(chat(question), maxTokens: 256)) }
        }
        _ = try await cluster.waitForStatus("tp-0 decoding") { s in
            let w = cluster.worker("tp-0", in: s)
            return (w?["running"] as? Int ?? 0) > 0 && (w?["computed_tokens"] as? Int ?? 0) > 0
        }
        try cluster.startWorker("solo", role: "mixed")
        try await cluster.waitUntilHealthy(["solo"])
        rank.crash()
        // The router's heartbeat timeout is 1.5 s here; the bound is loose
        // for a loaded machine, and the requests go on meanwhile.
        _ = try await cluster.waitForStatus("tp-0 dead", limit: .seconds(20)) { s in cluster.worker("tp-0", in: s)?["healthy"] as? Bool == false }
        for (question, request) in zip(questions, requests) {
            let completion = try await request.value
            #expect(completion.status == 200, "\(question): \(completion.raw)\n\(cluster.logs)")
            #expect(completion.content?.isEmpty == false, "\(question)")
        }
        let after = try await cluster.status()
        #expect(((after["decisions"] as? [String: Int])?["retry"] ?? 0) >= 1, "a request was moved off the broken group")
        leader.process.waitUntilExit()
        #expect(leader.process.terminationStatus != 0, "rank 0 stops with its group")

        _ = try startGroup(cluster, "tp-0", port: port)
        try await cluster.waitUntilHealthy(["tp-0"])
        let (code, _) = try await cluster.post("v1/chat/completions", body(chat("Name a river in Peru."), maxTokens: 8))
        #expect(code == 200)
    }

    /// `tensor_parallel: 2` in a cluster config: `loom up` starts both ranks
    /// and the banner, the status and a request say so.
    @Test func loomUpStartsTheRanksOfAConfiguredGroup() async throws {
        let directory = temporaryPath("tp-up")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (http, rpc, port) = (freePort(), freePort(), freePort())
        let config = "\(directory)/tp.yaml"
        try """
            model: \(try TestModel.path())
            router:
              port: \(http)
              rpc_port: \(rpc)
              heartbeat_interval_ms: 200
            workers:
              - name: group-0
                role: mixed
                port: \(port)
                tensor_parallel: 2
                tp_port: \(freePort())
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let up = try LoomChild("up", ["up", "--config", config])
        defer { up.kill() }
        var banner = up.announcement
        let deadline = ContinuousClock.now + .seconds(120)
        while !banner.contains("cluster ready"), ContinuousClock.now < deadline, up.process.isRunning {
            try await Task.sleep(for: .milliseconds(200))
            banner = (try? String(contentsOf: up.log, encoding: .utf8)) ?? ""
        }
        let cluster = ClusterHarness(model: try TestModel.path())
        cluster.httpURL = URL(string: "http://127.0.0.1:\(http)")
        let status = try await cluster.waitForStatus("group-0 with 2 ranks") { s in
            (cluster.worker("group-0", in: s)?["ranks"] as? [Any])?.count == 2
        }
        #expect(cluster.worker("group-0", in: status)?["healthy"] as? Bool == true)
        let (code, object) = try await cluster.post("v1/chat/completions", body(chat("What is the capital of France?"), maxTokens: 8))
        #expect(code == 200, "\(object)")
    }
}
