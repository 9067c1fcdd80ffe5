import Foundation
import LoomModel
import LoomTesting
import Testing

/// A system prompt of about 25 blocks on `topic`, and a question about it.
private func facts(_ topic: String) -> [ChatMessage] {
    let text = (0..<30).map { "Fact \($0) about \(topic): it is worth a sentence of its own." }.joined(separator: " ")
    return [ChatMessage(role: "system", content: text), ChatMessage(role: "user", content: "Summarize the facts about \(topic).")]
}

private func promptBlocks(_ completion: ClusterHarness.Completion) throws -> Int {
    let object = try #require(try JSONSerialization.jsonObject(with: Data(completion.raw.utf8)) as? [String: Any])
    let usage = try #require(object["usage"] as? [String: Any])
    return try #require(usage["prompt_tokens"] as? Int) / 16
}

private func hits(_ tier: String, _ cluster: ClusterHarness) async throws -> Int {
    cluster.tier(tier, in: try await cluster.cache())?["hits"] as? Int ?? -1
}

/// The tier's hits once they reach `least` (workers report them with their
/// heartbeats, so a count lags its request a little), or what they are
/// after five seconds.
private func hits(_ tier: String, _ cluster: ClusterHarness, reaching least: Int) async throws -> Int {
    var count = try await hits(tier, cluster)
    for _ in 0..<50 where count < least {
        try await Task.sleep(for: .milliseconds(100))
        count = try await hits(tier, cluster)
    }
    return count
}

/// What `loomctl cache` says is wrong with the first store node's disk,
/// once it says anything (at most ten seconds).
private func diskProblem(_ cluster: ClusterHarness) async throws -> String {
    var problem = ""
    for _ in 0..<100 where problem.isEmpty {
        try await Task.sleep(for: .milliseconds(100))
        problem = ((try await cluster.cache())["stores"] as? [[String: Any]])?.first?["disk_problem"] as? String ?? ""
    }
    return problem
}

/// A short prompt fits a store's DRAM tier: asked again after the
/// workers' caches are cleared, it comes back from there, unchanged.
private func expectServedFromDRAM(_ question: String, _ cluster: ClusterHarness) async throws {
    let short = [ChatMessage(role: "user", content: question)]
    let first = try await cluster.complete(body(short, maxTokens: 8))
    _ = try await cluster.post("admin/cache/clear", [:])
    let before = try await hits("store dram", cluster)
    try await Task.sleep(for: .milliseconds(500))
    let again = try await cluster.complete(body(short, maxTokens: 8))
    #expect(again.content == first.content)
    #expect(try await hits("store dram", cluster, reaching: before + 1) > before, "served from DRAM")
}

private func scratchDir() -> String {
    let path = FileManager.default.temporaryDirectory.path + "/loom-kv-\(UInt64.random(in: 0...UInt64.max))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The store's tiers, replicas and operator commands on real processes
/// with the real model: what survives a node's death or restart, what a
/// damaged or unwritable disk costs (nothing but recomputing), and pins.
@Suite(.serialized) struct KVStoreTierProcessTests {
    @Test func withTwoReplicasLosingAStoreNodeLosesNoBlock() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let (a, addressA) = try cluster.startStore("kvstore-a", dramMiB: 64)
        let (_, addressB) = try cluster.startStore("kvstore-b", dramMiB: 64)
        try cluster.startWorker("mixed-0", role: "mixed", extra: [
            "--kvstore", addressA, "--kvstore", addressB, "--kvstore-replicas", "2", "--kv-blocks", "48",
        ])
        try await cluster.waitUntilHealthy(["kvstore-a", "kvstore-b", "mixed-0"])
        let first = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        let blocks = try promptBlocks(first)
        _ = try await cluster.waitForStatus("both replicas hold the prompt") { status in
            ["kvstore-a", "kvstore-b"].allSatisfy { (cluster.worker($0, in: status)?["kv_blocks_used"] as? Int ?? 0) >= blocks }
        }
        a.crash()
        for topic in ["mountains", "deserts"] { _ = try await cluster.complete(body(facts(topic), maxTokens: 12)) }
        let before = try await hits("store dram", cluster)
        let again = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        #expect(again.content == first.content, "\(again.raw)")
        #expect(try await hits("store dram", cluster, reaching: before + 1) > before, "the prompt came back from the replica left alive")
    }

    @Test func aStoreRestartedWithItsDiskDirServesItsBlocksAndACorruptOneIsRecomputed() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let dir = scratchDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try cluster.startRouter()
        let disk = ["--disk-dir", dir, "--admission", "all"]
        let (store, address) = try cluster.startStore("kvstore-0", dramMiB: 64, extra: disk)
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", address])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])
        let first = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        let blocks = try promptBlocks(first)
        _ = try await cluster.waitForStatus("the prompt in the store") { (cluster.worker("kvstore-0", in: $0)?["kv_blocks_used"] as? Int ?? 0) >= blocks }
        store.kill()
        #expect(store.tail.contains("blocks from DRAM to disk for the next start"), "\(store.tail)")

        // Same port, same folder: the index is rebuilt from the files and
        // announced at registration. DRAM for 11 blocks, so that what the
        // next asks read back does not all stay there.
        let port = try #require(address.split(separator: ":").last.map(String.init))
        _ = try cluster.startStore("kvstore-0", dramMiB: 4, extra: disk + ["--port", port])
        let restartedStatus = try await cluster.waitForStatus("the restarted node's blocks in the index") { status in
            cluster.worker("kvstore-0", in: status)?["healthy"] as? Bool == true
                && (cluster.worker("kvstore-0", in: status)?["indexed_blocks"] as? Int ?? 0) >= blocks
        }
        let indexed = cluster.worker("kvstore-0", in: restartedStatus)
        #expect(indexed?["indexed_disk_blocks"] as? Int == indexed?["indexed_blocks"] as? Int, "the index knows they are on disk: \(indexed ?? [:])")
        let (cleared, _) = try await cluster.post("admin/cache/clear", [:])
        #expect(cleared == 200)
        let again = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        #expect(again.content == first.content, "\(again.raw)")
        #expect(try await hits("store disk", cluster, reaching: blocks) >= blocks, "every block came back from disk")

        // Damage every file: the first one read fails its checksum, is
        // dropped, and the worker computes the prompt; the answer holds.
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".lkvb") {
            let file = URL(fileURLWithPath: dir + "/" + name)
            var bytes = try [UInt8](Data(contentsOf: file))
            bytes[bytes.count - 3] ^= 0x10
            try Data(bytes).write(to: file)
        }
        _ = try await cluster.post("admin/cache/clear", [:])
        let third = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        #expect(third.content == first.content, "\(third.raw)")
        var corrupt = 0
        for _ in 0..<50 where corrupt == 0 {
            try await Task.sleep(for: .milliseconds(100))
            corrupt = ((try await cluster.cache())["stores"] as? [[String: Any]])?.first?["disk_corrupt"] as? Int ?? 0
        }
        #expect(corrupt == 1, "the first damaged block read ends the run")
        let restarted = try #require(cluster.workers["kvstore-0"])
        #expect(restarted.tail.components(separatedBy: "fails its checksum").count == 2, "logged once: \(restarted.tail)")
    }

    @Test func aStoreKilledAfterAPromptWasReusedComesBackWithIt() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let dir = scratchDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try cluster.startRouter()
        // The default admission: a block goes to disk from its first reuse.
        let (store, address) = try cluster.startStore("kvstore-0", dramMiB: 64, extra: ["--disk-dir", dir])
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", address])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])
        let first = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        let blocks = try promptBlocks(first)
        _ = try await cluster.waitForStatus("the prompt in the store") { (cluster.worker("kvstore-0", in: $0)?["kv_blocks_used"] as? Int ?? 0) >= blocks }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "nothing reused yet, nothing on disk")
        _ = try await cluster.post("admin/cache/clear", [:])
        _ = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        var files = 0
        for _ in 0..<50 where files < blocks {
            try await Task.sleep(for: .milliseconds(100))
            files = try FileManager.default.contentsOfDirectory(atPath: dir).count { $0.hasSuffix(".lkvb") }
        }
        #expect(files >= blocks, "the reused prompt went to disk as it was read")
        store.crash()

        let port = try #require(address.split(separator: ":").last.map(String.init))
        _ = try cluster.startStore("kvstore-0", dramMiB: 64, extra: ["--disk-dir", dir, "--port", port])
        _ = try await cluster.waitForStatus("the killed node's blocks back in the index") { status in
            cluster.worker("kvstore-0", in: status)?["healthy"] as? Bool == true
                && (cluster.worker("kvstore-0", in: status)?["indexed_disk_blocks"] as? Int ?? 0) >= blocks
        }
        _ = try await cluster.post("admin/cache/clear", [:])
        let before = try await hits("store disk", cluster)
        let third = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        #expect(third.content == first.content)
        #expect(try await hits("store disk", cluster, reaching: before + blocks) >= before + blocks)
    }

    @Test func aDiskDirThatStopsTakingWritesLeavesTheNodeServingFromDRAM() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let dir = scratchDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try cluster.startRouter()
        // 4 MiB hold 11 blocks: the prompt's others must go to disk.
        let (_, address) = try cluster.startStore("kvstore-0", dramMiB: 4, extra: ["--disk-dir", dir + "/kv", "--admission", "all"])
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", address])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])
        // The folder is replaced by a file: every write into it fails.
        try FileManager.default.removeItem(atPath: dir + "/kv")
        FileManager.default.createFile(atPath: dir + "/kv", contents: Data("in the way".utf8))
        _ = try await cluster.complete(body(facts("rivers"), maxTokens: 12))
        let problem = try await diskProblem(cluster)
        #expect(problem.contains("Not a directory") && problem.contains("DRAM only"), "loomctl cache says why: \(problem)")

        try await expectServedFromDRAM("Name three rivers of Europe and the seas they flow into, in one sentence each.", cluster)
    }

    /// A real full disk: a 2 MiB tmpfs (five blocks of the model) under a
    /// disk tier that may take a GiB, so the writes fail with ENOSPC, not
    /// on the tier's own limit. Needs root to mount, as CI runs.
    @Test func aFullDiskLeavesTheNodeServingFromDRAMAndSaysSo() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        let dir = scratchDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mount = try Tmpfs(at: dir + "/kv", megabytes: 2)
        defer { mount.unmount() }
        try cluster.startRouter()
        let (_, address) = try cluster.startStore("kvstore-0", dramMiB: 4,
                                                  extra: ["--disk-dir", mount.path, "--disk-gib", "1", "--admission", "all"])
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", address])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])
        // About 25 blocks with 11 DRAM slots: evictions go to disk until it is full.
        _ = try await cluster.complete(body(facts("glaciers"), maxTokens: 12))
        let problem = try await diskProblem(cluster)
        #expect(problem.contains("No space left on device") && problem.contains("DRAM only"), "loomctl cache says why: \(problem)")
        let log = try String(contentsOf: try #require(cluster.workers["kvstore-0"]).log, encoding: .utf8)
        #expect(log.contains("No space left on device"), "and so does the node's log")

        try await expectServedFromDRAM("Name three glaciers of the Alps and the valleys below them, in one sentence each.", cluster)
    }

    @Test func loomctlPinsAPrefixThatOutlivesTheWorkersCaches() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        let file = scratchDir() + "/system.txt"
        let system = (0..<12).map { "Rule \($0): answer in one short sentence and cite the rule." }.joined(separator: " ")
        try system.write(toFile: file, atomically: true, encoding: .utf8)
        let url = cluster.httpURL.absoluteString
        let refused = try Shell.run("loomctl --router \(url) cache pin --file \(file) --ttl 30m")
        #expect(refused.status != 0 && refused.output.contains("no store node is registered"), "\(refused.output)")

        let (_, address) = try cluster.startStore("kvstore-0", dramMiB: 64)
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", address])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])
        let pinned = try Shell.run("loomctl --router \(url) cache pin --file \(file) --ttl 30m")
        #expect(pinned.status == 0 && pinned.output.contains("a worker computed the prefix first"), "\(pinned.output)")
        let cleared = try Shell.run("loomctl --router \(url) cache clear --workers")
        #expect(cleared.status == 0 && cleared.output.contains("mixed-0: dropped"), "\(cleared.output)")

        let messages = [ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: "What is rule 3?")]
        _ = try await cluster.complete(body(messages, maxTokens: 8))
        #expect(try await hits("store dram", cluster, reaching: 4) >= 4, "the pinned system prompt came from the store")
        let shown = try Shell.run("loomctl --router \(url) cache")
        #expect(shown.output.contains("pin \"Rule 0: answer in one short sentence and") && shown.output.contains("store dram"), "\(shown.output)")
        let json = try Shell.run("loomctl --router \(url) cache --json")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        #expect((report["pins"] as? [[String: Any]])?.first?["expires_in_seconds"] as? Int ?? 0 > 1700)
    }

    @Test func twoAPIKeysNeverShareBlocksThroughTheStore() async throws {
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter(["--api-key", "alpha", "--api-key", "beta"])
        let (_, address) = try cluster.startStore("kvstore-0", dramMiB: 64)
        try cluster.startWorker("mixed-0", role: "mixed", extra: ["--kvstore", address])
        try await cluster.waitUntilHealthy(["kvstore-0", "mixed-0"])
        func cached(_ key: String) async throws -> Int {
            let (status, object) = try await cluster.post("v1/chat/completions", body(facts("rivers"), maxTokens: 4), apiKey: key)
            #expect(status == 200, "\(object)")
            return ((object["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? -1
        }
        #expect(try await cached("alpha") == 0)
        _ = try await cluster.waitForStatus("alpha's blocks in the store") { (cluster.worker("kvstore-0", in: $0)?["kv_blocks_used"] as? Int ?? 0) >= 20 }
        let (cleared, _) = try await cluster.post("admin/cache/clear", [:], apiKey: "beta")
        #expect(cleared == 200)
        #expect(try await cached("beta") == 0, "beta finds none of alpha's blocks, in the pool or in the store")
        _ = try await cluster.post("admin/cache/clear", [:], apiKey: "alpha")
        #expect(try await cached("alpha") >= 20 * 16, "alpha's come back from the store")
        let (refused, _) = try await cluster.post("admin/cache/clear", [:])
        #expect(refused == 401, "changing the cache takes a key")
    }
}

/// A tmpfs of a fixed size mounted for one test: a disk that really fills.
private struct Tmpfs {
    let path: String

    init(at path: String, megabytes: Int) throws {
        guard getuid() == 0 else { throw TmpfsFailure("mounting a small tmpfs (a disk that fills) needs root; run as root, as CI does") }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = try Tool.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard status == 0 else { throw TmpfsFailure("mount -t tmpfs at \(path) exited with \(status): \(output)") }
        self.path = path
    }

    func unmount() { _ = try? Tool.run("/usr/bin/umount", [path]) }
}

private struct TmpfsFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
