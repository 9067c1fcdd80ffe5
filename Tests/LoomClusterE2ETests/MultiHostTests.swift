import Foundation
import LoomModel
import LoomTesting
import Testing

/// Router, prefill and decode worker each in its own network namespace,
/// joined by a bridge in a fourth: three hosts as far as Loom can tell, so
/// the prompt's KV crosses a real (virtual) network on the `tcp` backend.
/// Needs root and iproute2, as CI has; without them the test FAILS rather
/// than skipping, so a multi-host test that never ran cannot look green.
struct VirtualHosts {
    let prefix: String
    let names: [String]
    let switchName: String

    static func create(_ count: Int) throws -> VirtualHosts {
        guard getuid() == 0 else { throw ClusterDidNotStart(description: "multi-host tests need root to create network namespaces") }
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let hosts = VirtualHosts(prefix: id, names: (0..<count).map { "loomh\($0)-\(id)" }, switchName: "loomsw-\(id)")
        do {
            try ip(["netns", "add", hosts.switchName])
            try ip(["-n", hosts.switchName, "link", "add", "br0", "type", "bridge"])
            try ip(["-n", hosts.switchName, "link", "set", "br0", "up"])
            for (i, host) in hosts.names.enumerated() {
                let inside = "h\(i)\(id)".prefix(15), outside = "s\(i)\(id)".prefix(15)
                try ip(["netns", "add", host])
                try ip(["link", "add", String(inside), "netns", host, "type", "veth", "peer", "name", String(outside), "netns", hosts.switchName])
                try ip(["-n", host, "addr", "add", "\(hosts.address(i))/24", "dev", String(inside)])
                try ip(["-n", host, "link", "set", String(inside), "up"])
                try ip(["-n", host, "link", "set", "lo", "up"])
                try ip(["-n", hosts.switchName, "link", "set", String(outside), "master", "br0"])
                try ip(["-n", hosts.switchName, "link", "set", String(outside), "up"])
            }
        } catch {
            hosts.destroy()
            throw error
        }
        return hosts
    }

    func address(_ host: Int) -> String { "10.232.0.\(host + 1)" }

    /// The command prefix that runs a program on host `i`.
    func exec(_ host: Int) -> [String] { ["/usr/sbin/ip", "netns", "exec", names[host]] }

    /// `curl -s` run on `host`, its JSON answer (or the raw text under "raw").
    func curl(from host: Int, _ arguments: [String]) throws -> [String: Any] {
        let (_, output) = try Self.run("/usr/sbin/ip", ["netns", "exec", names[host], "curl", "-s", "--max-time", "120"] + arguments)
        return (try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]) ?? ["raw": output]
    }

    func destroy() {
        for name in names + [switchName] { try? VirtualHosts.ip(["netns", "del", name]) }
    }

    static func ip(_ arguments: [String]) throws {
        let (status, output) = try run("/usr/sbin/ip", arguments)
        guard status == 0 else { throw ClusterDidNotStart(description: "`ip \(arguments.joined(separator: " "))` failed: \(output)") }
    }

    static func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
        try Tool.run(tool, arguments)
    }
}

@Suite(.serialized) struct MultiHostTests {
    @Test func theKVCrossesHostsOverTCPAndTheOutputIsUnchanged() async throws {
        let reference = try Reference()
        let hosts = try VirtualHosts.create(3)
        defer { hosts.destroy() }
        let model = try TestModel.path()
        let router = hosts.address(0)
        let children = [
            try LoomChild("router-ns", ["router", "--model", model, "--host", router, "--port", "8080", "--rpc-port", "7600",
                                        "--heartbeat-interval-ms", "100"], prefix: hosts.exec(0)),
            try LoomChild("prefill-ns", ["worker", "--model", model, "--name", "prefill-0", "--role", "prefill", "--host", hosts.address(1),
                                         "--port", "7610", "--router", "\(router):7600", "--threads", "1", "--kv-blocks", "256"], prefix: hosts.exec(1)),
            try LoomChild("decode-ns", ["worker", "--model", model, "--name", "decode-0", "--role", "decode", "--host", hosts.address(2),
                                        "--port", "7611", "--router", "\(router):7600", "--threads", "1", "--kv-blocks", "256"], prefix: hosts.exec(2)),
        ]
        defer { for child in children { child.crash() } }

        // The client sits on the router's host.
        let curl = { try hosts.curl(from: 0, $0) }
        var status: [String: Any] = [:]
        for _ in 0..<300 {
            status = try curl(["http://\(router):8080/admin/status"])
            if (status["workers"] as? [[String: Any]])?.filter({ $0["healthy"] as? Bool == true }).count == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let messages = chat("What is the capital of Japan?")
        let payload = String(decoding: try JSONSerialization.data(withJSONObject: body(messages, maxTokens: 16)), as: UTF8.self)
        let response = try curl(["-H", "Content-Type: application/json", "-d", payload, "http://\(router):8080/v1/chat/completions"])
        #expect(content(response) == (try reference.completion(messages, maxTokens: 16)), "\(response)\n\(children.map(\.tail).joined(separator: "\n"))")

        for _ in 0..<100 {
            status = try curl(["http://\(router):8080/admin/status"])
            let decode = (status["workers"] as? [[String: Any]])?.first { $0["id"] as? String == "decode-0" }
            if (decode?["kv_blocks_received"] as? Int ?? 0) > 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let workers = try #require(status["workers"] as? [[String: Any]])
        let decode = try #require(workers.first { $0["id"] as? String == "decode-0" })
        let prefill = try #require(workers.first { $0["id"] as? String == "prefill-0" })
        #expect(decode["address"] as? String == "\(hosts.address(2)):7611")
        #expect((decode["kv_blocks_received"] as? Int ?? 0) > 0 && decode["kv_blocks_received"] as? Int == prefill["kv_blocks_sent"] as? Int)
        #expect(decode["remote_prefilled_tokens"] as? Int == (try reference.prompt(messages)).count)
        #expect(prefill["tcp_writes"] as? Int == 1 && prefill["shm_writes"] as? Int == 0, "hosts apart use tcp")
    }

    /// A store node on a host of its own: puts and gets cross over tcp, in
    /// writes long enough to be cut into parts mid-block.
    @Test func aStoreNodeOnAnotherHostServesAPromptBack() async throws {
        let hosts = try VirtualHosts.create(3)
        defer { hosts.destroy() }
        let model = try TestModel.path()
        let router = hosts.address(0)
        let children = [
            try LoomChild("router-ns", ["router", "--model", model, "--host", router, "--port", "8080", "--rpc-port", "7600",
                                        "--heartbeat-interval-ms", "100"], prefix: hosts.exec(0)),
            try LoomChild("kvstore-ns", ["kvstore", "--model", model, "--name", "kvstore-0", "--host", hosts.address(1), "--port", "7620",
                                         "--router", "\(router):7600", "--dram-mib", "64"], prefix: hosts.exec(1)),
            try LoomChild("mixed-ns", ["worker", "--model", model, "--name", "mixed-0", "--role", "mixed", "--host", hosts.address(2),
                                       "--port", "7610", "--router", "\(router):7600", "--threads", "1", "--kv-blocks", "256",
                                       "--kvstore", "\(hosts.address(1)):7620"], prefix: hosts.exec(2)),
        ]
        defer { for child in children { child.crash() } }
        let curl = { try hosts.curl(from: 0, $0) }
        func member(_ name: String) throws -> [String: Any]? {
            (try curl(["http://\(router):8080/admin/status"])["workers"] as? [[String: Any]])?.first { $0["id"] as? String == name }
        }
        for _ in 0..<300 where try member("mixed-0")?["healthy"] as? Bool != true || member("kvstore-0")?["healthy"] as? Bool != true {
            try await Task.sleep(for: .milliseconds(100))
        }
        let system = (0..<40).map { "Fact \($0) about lighthouses: each one is worth a sentence of its own." }.joined(separator: " ")
        let messages = [ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: "Summarize the facts.")]
        let payload = String(decoding: try JSONSerialization.data(withJSONObject: body(messages, maxTokens: 8)), as: UTF8.self)
        let ask = ["-H", "Content-Type: application/json", "-d", payload, "http://\(router):8080/v1/chat/completions"]
        let first = try curl(ask)
        let promptTokens = try #require((first["usage"] as? [String: Any])?["prompt_tokens"] as? Int, "\(first)")
        #expect(promptTokens / 16 > 22, "more blocks than one 8 MiB tcp part holds")
        for _ in 0..<100 where (try member("kvstore-0")?["kv_blocks_used"] as? Int ?? 0) < promptTokens / 16 {
            try await Task.sleep(for: .milliseconds(100))
        }
        _ = try curl(["-X", "POST", "-d", "{}", "http://\(router):8080/admin/cache/clear"])
        let again = try curl(ask)
        let cached = ((again["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? 0
        #expect(cached >= promptTokens / 16 * 16 - 16, "fetched from the other host: \(again)\n\(children.map(\.tail).joined(separator: "\n"))")
        #expect(content(again) == content(first))
    }

    /// A tensor-parallel worker with a rank on each of two hosts: its
    /// all-reduces cross over tcp, the router sees one worker with both
    /// ranks, and the answer is the one a single process gives.
    @Test func aTensorParallelGroupSpansTwoHostsOverTCP() async throws {
        let reference = try Reference()
        let hosts = try VirtualHosts.create(3)
        defer { hosts.destroy() }
        let model = try TestModel.path()
        let router = hosts.address(0)
        let group = ["--tp-size", "2", "--tp-peers", "\(hosts.address(1)):7071", "--tp-join-seconds", "60"]
        let leader = try LoomChild("tp-0-ns", ["worker", "--model", model, "--name", "tp-0", "--role", "mixed", "--host", hosts.address(1),
                                               "--port", "7610", "--router", "\(router):7600", "--threads", "1", "--kv-blocks", "256"] + group,
                                   prefix: hosts.exec(1))
        let rank = try LoomChild("tp-0-1-ns", ["worker", "--model", model, "--name", "tp-0-1", "--threads", "1", "--tp-rank", "1"] + group, prefix: hosts.exec(2))
        let children = [
            try LoomChild("router-ns", ["router", "--model", model, "--host", router, "--port", "8080", "--rpc-port", "7600",
                                        "--heartbeat-interval-ms", "100"], prefix: hosts.exec(0)),
            leader, rank,
        ]
        defer { for child in children { child.crash() } }
        #expect(rank.announcement.contains("rank 0 pid \(leader.process.processIdentifier) at the leader's address over tcp"), "\(rank.announcement)")
        let curl = { try hosts.curl(from: 0, $0) }
        var status: [String: Any] = [:]
        for _ in 0..<600 {
            status = try curl(["http://\(router):8080/admin/status"])
            if (status["workers"] as? [[String: Any]])?.first?["healthy"] as? Bool == true { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let worker = try #require((status["workers"] as? [[String: Any]])?.first { $0["id"] as? String == "tp-0" }, "\(status)\n\(leader.tail)")
        let ranks = try #require(worker["ranks"] as? [[String: Any]])
        #expect(ranks.map { $0["pid"] as? Int } == [Int(leader.process.processIdentifier), Int(rank.process.processIdentifier)])
        #expect(ranks.map { $0["link"] as? String } == ["", "tcp"])
        #expect((ranks[1]["address"] as? String)?.hasPrefix("\(hosts.address(2)):") == true, "\(ranks)")

        let messages = chat("What is the capital of Japan?")
        let payload = String(decoding: try JSONSerialization.data(withJSONObject: body(messages, maxTokens: 16)), as: UTF8.self)
        let response = try curl(["-H", "Content-Type: application/json", "-d", payload, "http://\(router):8080/v1/chat/completions"])
        #expect(content(response) == (try reference.completion(messages, maxTokens: 16)), "\(response)\n\(children.map(\.tail).joined(separator: "\n"))")
    }
}
