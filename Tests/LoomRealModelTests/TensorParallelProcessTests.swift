import Foundation
import LoomEngine
import LoomModel
import LoomTesting
import Testing

/// Tensor-parallel groups of real `loom` processes on this host (over shm
/// between them, or tcp on loopback), with the real model.
@Suite(.serialized) struct TensorParallelProcessTests {
    struct GenerateJSON: Decodable {
        var tokens: [TokenID]
    }

    func generate(tp: Int, _ flags: [String]) throws -> [TokenID] {
        let output = try LoomProcess.run(
            ["generate", "--model", try TestModel.path(), "--prompt", Self.prompt, "--max-tokens", "24",
             "--threads", "1", "--json", "--tp", "\(tp)"] + flags)
        #expect(output.status == 0, "\(output.stderr)")
        // Every rank ends when its leader stops it, whichever rank closes
        // its connections first.
        #expect(!output.stderr.contains("restart the group"), "\(output.stderr)")
        return try JSONDecoder().decode(GenerateJSON.self, from: Data(output.stdout.utf8)).tokens
    }

    static let prompt = "The three primary colours are"

    /// One process's top `k` at every step of `tokens` after the prompt,
    /// teacher-forced.
    func reference(_ tokens: [TokenID], top k: Int) throws -> [[Logprobs.Entry]] {
        let model = try LanguageModel(path: try TestModel.path(), threads: 2)
        let prompt = try model.tokenizer.encode(Self.prompt, as: .rawPrompt())
        let cache = SequenceKVCache(layout: KVCacheLayout(config: model.transformer.config), capacity: prompt.count + tokens.count)
        var batch = ForwardBatch()
        batch.append(tokens: prompt, startingAt: 0, blockTable: cache.blockTable)
        var out = [Logprobs.top(k, in: try model.transformer.forward(batch, kv: cache.memory))]
        for (i, token) in tokens.dropLast().enumerated() {
            var next = ForwardBatch()
            next.append(tokens: [token], startingAt: prompt.count + i, blockTable: cache.blockTable)
            out.append(Logprobs.top(k, in: try model.transformer.forward(next, kv: cache.memory)))
        }
        return out
    }

    /// N = 2 deals the 3 KV heads 2 + 1; N = 3 one each; N = 4 replicates
    /// one. Greedy, a group gives one process's tokens up to a near-tie
    /// (see GroupFidelityTests for why not beyond), where one process's
    /// margin is under 0.5 nats, as llama.cpp's own variants flip.
    @Test func greedyGroupsOfTwoThreeAndFourFollowOneProcessUpToANearTie() throws {
        let alone = try generate(tp: 1, [])
        #expect(alone.count == 24)
        for tp in [2, 3, 4] {
            let grouped = try generate(tp: tp, [])
            let agree = zip(grouped, alone).prefix { $0 == $1 }.count
            guard agree < alone.count else { continue }
            let step = try reference(alone, top: 2)[agree]
            #expect(step[0].logprob - step[1].logprob < 0.5, "TP=\(tp) left one process's tokens at step \(agree), where its margin is \(step[0].logprob - step[1].logprob)")
        }
    }

    /// Seeded sampling with top-k 40: every token a group draws is among
    /// one process's most likely at that step (gathered logits with a
    /// wrong column would not be: 60 of 49152, as the 40th place is as
    /// prone to a near-tie as the first), and the group draws the same again.
    @Test func sampledTokensOfAGroupAreAmongOneProcesssTopK() throws {
        let flags = ["--temperature", "0.8", "--top-k", "40", "--seed", "7"]
        for tp in [2, 3, 4] {
            let grouped = try generate(tp: tp, flags)
            #expect(grouped.count == 24)
            for (step, (token, top)) in zip(grouped, try reference(grouped, top: 60)).enumerated() {
                #expect(top.contains { $0.token == token }, "TP=\(tp) step \(step): token \(token) is not in one process's top 60")
            }
            #expect(try generate(tp: tp, flags) == grouped, "TP=\(tp) with a seed draws the same tokens twice")
        }
    }

    /// Over tcp the ranks sum the same partials in the same order as over
    /// shm, so a group gives the very same tokens, greedy and sampled.
    @Test func overTCPAGroupGivesTheTokensItGivesOverSharedMemory() throws {
        let sampled = ["--temperature", "0.8", "--top-k", "40", "--seed", "11"]
        for tp in [2, 3] {
            for flags in [[], sampled] {
                let shm = try generate(tp: tp, flags)
                #expect(shm.count == 24)
                #expect(try generate(tp: tp, flags + ["--tp-transport", "tcp"]) == shm, "TP=\(tp) \(flags)")
            }
        }
    }

    /// A rank killed mid-generation: rank 0 notices at its next all-reduce
    /// and exits with an error naming the rank, instead of hanging; over
    /// shm by the rank's pid, over tcp by its connection closing.
    @Test(arguments: ["automatic", "tcp"])
    func aRankKilledMidStepStopsTheGroupWithItsName(transport: String) throws {
        let process = Process()
        process.executableURL = LoomProcess.executable
        process.arguments = ["generate", "--model", try TestModel.path(), "--prompt", "Count to a thousand:", "--max-tokens", "4000",
                             "--ignore-eos", "--threads", "1", "--tp", "2", "--tp-transport", transport]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var seen = ""
        while !seen.contains("ranks joined (") {
            let data = err.fileHandleForReading.availableData
            guard !data.isEmpty else { break }
            seen += String(decoding: data, as: UTF8.self)
        }
        let line = try #require(seen.split(separator: "\n").first { $0.contains("ranks joined (") }, "\(seen)")
        let pids = line.matches(of: /pid (\d+)/).compactMap { Int32($0.1) }
        try #require(pids.count == 2, "\(line)")
        #expect(line.contains(transport == "tcp" ? "over tcp" : "over shm"), "\(line)")
        Thread.sleep(forTimeInterval: 0.5)
        kill(pids[1], SIGKILL)
        let rest = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = seen + String(decoding: rest, as: UTF8.self)
        #expect(process.terminationStatus != 0)
        #expect(stderr.contains("rank 1 (pid \(pids[1])") && stderr.contains(transport == "tcp" ? "closed its connection" : "exited"), "\(stderr)")
        // The killed rank could not unlink its regions (its group region
        // and its KV pool); the next group started on this host removes
        // them. (A suite running beside this one may have started a group
        // already, and swept them first.)
        let leftBehind = { (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm"))?.filter { $0.hasPrefix("loom-tp1") && $0.contains(".pid\(pids[1])-") } ?? [] }
        #expect(leftBehind().count <= 2)
        _ = try generate(tp: 2, ["--max-tokens", "1"])
        #expect(leftBehind().isEmpty)
    }

    /// Ranks started by hand with different group sizes: both refuse to
    /// start, and say which rank and which sizes.
    @Test func ranksStartedWithDifferentSizesAreRefusedAtStartUp() throws {
        let port = freePort()
        let model = try TestModel.path()
        let leader = Process()
        leader.executableURL = LoomProcess.executable
        leader.arguments = ["worker", "--name", "w", "--model", model, "--router", "127.0.0.1:1", "--threads", "1",
                            "--tp-size", "3", "--tp-peers", "127.0.0.1:\(port)", "--tp-join-seconds", "30"]
        let leaderErr = Pipe()
        leader.standardError = leaderErr
        leader.standardOutput = FileHandle.nullDevice
        try leader.run()
        let rank = try LoomProcess.run(["worker", "--name", "w-1", "--model", model, "--threads", "1",
                                        "--tp-size", "2", "--tp-rank", "1", "--tp-peers", "127.0.0.1:\(port)", "--tp-join-seconds", "30"])
        let leaderOutput = String(decoding: leaderErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        leader.waitUntilExit()
        #expect(rank.status != 0 && leader.terminationStatus != 0)
        #expect(rank.stderr.contains("refused rank 1") && rank.stderr.contains("--tp-size 2 but the leader with 3"), "\(rank.stderr)")
        #expect(leaderOutput.contains("rank 1") && leaderOutput.contains("--tp-size 2 but the leader with 3"), "\(leaderOutput)")
    }

    /// In a LeaderWorkerSet a rank learns its group from the environment:
    /// with no leader there, rank 1 gives up naming the leader's address.
    @Test func aRankReadsItsGroupFromALeaderWorkerSetsEnvironment() throws {
        let port = freePort()
        let output = try LoomProcess.run(
            ["worker", "--name", "lws-1", "--model", try TestModel.path(), "--threads", "1", "--tp-join-seconds", "1"],
            environment: ["LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1", "LWS_LEADER_ADDRESS": "127.0.0.1:\(port)"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("rank 1 could not join the leader at 127.0.0.1:\(port)"), "\(output.stderr)")
    }
}
