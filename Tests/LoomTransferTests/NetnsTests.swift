import Foundation
import LoomTesting
import Testing

/// Two network namespaces joined by a veth pair stand in for two hosts; a
/// `loom-peer` server runs in one, clients in the other. Needs root and
/// iproute2 (CI runs as root); without them these tests FAIL, on purpose:
/// a skipped multi-host test would hide that it never ran.
@Suite("Transfer across network namespaces", .serialized)
struct NetnsTests {
    struct Hosts {
        let a: String
        let b: String
        let serverAddress = "10.231.7.2"

        static func create() throws -> Hosts {
            guard getuid() == 0 else { throw Failure("netns tests need root to create network namespaces (run as root, as CI does)") }
            let id = "\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
            let hosts = Hosts(a: "loomt-a-\(id)", b: "loomt-b-\(id)")
            let vethA = "lta\(id.suffix(6))", vethB = "ltb\(id.suffix(6))"
            let steps: [[String]] = [
                ["netns", "add", hosts.a], ["netns", "add", hosts.b],
                ["link", "add", vethA, "netns", hosts.a, "type", "veth", "peer", "name", vethB, "netns", hosts.b],
                ["-n", hosts.a, "addr", "add", "10.231.7.1/30", "dev", vethA],
                ["-n", hosts.b, "addr", "add", "10.231.7.2/30", "dev", vethB],
                ["-n", hosts.a, "link", "set", vethA, "up"], ["-n", hosts.b, "link", "set", vethB, "up"],
                ["-n", hosts.a, "link", "set", "lo", "up"], ["-n", hosts.b, "link", "set", "lo", "up"],
            ]
            for step in steps {
                let (status, output) = try run("/usr/sbin/ip", step)
                guard status == 0 else {
                    hosts.destroy()
                    throw Failure("`ip \(step.joined(separator: " "))` failed (\(status)): \(output)")
                }
            }
            return hosts
        }

        /// Deleting the namespaces also deletes the veth pair.
        func destroy() {
            _ = try? run("/usr/sbin/ip", ["netns", "del", a])
            _ = try? run("/usr/sbin/ip", ["netns", "del", b])
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(a)")
        }

        /// Gives host A its own /etc/hosts: `ip netns exec` mounts
        /// /etc/netns/NAME/hosts over it for the processes it starts.
        func hostsFileOfA(_ text: String) throws {
            let directory = "/etc/netns/\(a)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try text.write(toFile: "\(directory)/hosts", atomically: true, encoding: .utf8)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static var peerBinary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("loom-peer").path
    }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
        try Tool.run(tool, arguments)
    }

    /// Starts `loom-peer` in a namespace with output to a file we poll.
    static func spawn(in namespace: String, _ arguments: [String]) throws -> (Process, URL) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("loom-peer-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace, peerBinary] + arguments
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return (process, log)
    }

    /// Polls `log` (at most `seconds`) for a line starting with `prefix`.
    static func awaitLine(_ prefix: String, in log: URL, seconds: Int = 60) async throws -> String {
        for _ in 0..<(seconds * 10) {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure("no line starting \(prefix) within \(seconds)s; output was: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    static func awaitExit(_ process: Process, seconds: Int = 60) async throws {
        for _ in 0..<(seconds * 10) where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            process.terminate()
            throw Failure("process did not finish within \(seconds)s (a hang)")
        }
    }

    /// Runs `body` with the hosts, the descriptor of the server's region
    /// for the given backend, and the server's pid.
    func withServer(backend: String = "tcp", _ body: (Hosts, String, String) async throws -> Void) async throws {
        let hosts = try Hosts.create()
        defer { hosts.destroy() }
        let fabric = backend == "fabric" ? ["--fabric", "tcp;ofi_rxm"] : []
        let (server, log) = try Self.spawn(in: hosts.b, ["serve", "--host", hosts.serverAddress, "--port", "7461", "--region-bytes", "\(8 << 20)"] + fabric)
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() } }
        let listening = try await Self.awaitLine("LISTENING", in: log)
        let descriptor = backend == "fabric"
            ? String(try await Self.awaitLine("FABRIC", in: log, seconds: 1).split(separator: " ")[1])
            : String(listening.split(separator: " ")[2])
        try await body(hosts, descriptor, "\(server.processIdentifier)")
    }

    /// The client's own arguments for `backend`: a fabric endpoint binds to
    /// host A's address, as it would on a real second machine.
    static func clientArguments(_ hosts: Hosts, backend: String) -> [String] {
        ["--host", hosts.serverAddress, "--port", "7461", "--backend", backend, "--bind", "10.231.7.1"]
    }

    @Test("RPC works between two hosts")
    func rpc() async throws {
        try await withServer { hosts, _, _ in
            let (rpc, rpcLog) = try Self.spawn(in: hosts.a, ["client", "--host", hosts.serverAddress, "--port", "7461", "--mode", "rpc"])
            try await Self.awaitExit(rpc)
            #expect(try await Self.awaitLine("OK", in: rpcLog, seconds: 1) == "OK rpc 100")
        }
    }

    @Test("a transfer lands between two hosts", arguments: ["tcp", "fabric"])
    func transfer(_ backend: String) async throws {
        try await withServer(backend: backend) { hosts, descriptor, _ in
            let (transfer, transferLog) = try Self.spawn(in: hosts.a, ["client", "--mode", "transfer", "--descriptor", descriptor] + Self.clientArguments(hosts, backend: backend))
            try await Self.awaitExit(transfer)
            let line = try await Self.awaitLine("OK", in: transferLog, seconds: 1)
            // "OK transfer <count> <sum> expected <count> <sum>": the server saw the bytes we sent.
            let words = line.split(separator: " ")
            #expect(words.count == 7 && words[2] == words[5] && words[3] == words[6], "\(line)")
        }
    }

    @Test("tcp lanes reach a server whose name resolves first to an address where they are not served")
    func nameWithSeveralAddresses() async throws {
        try await withServer { hosts, descriptor, _ in
            // Host A's own address refuses at once; the RPC call then goes
            // on to the server's. The lanes must follow the call there,
            // not resolve the name again and dial the first address.
            try hosts.hostsFileOfA("10.231.7.1 loom-two-homed\n\(hosts.serverAddress) loom-two-homed\n")
            var arguments = Self.clientArguments(hosts, backend: "tcp")
            arguments[arguments.firstIndex(of: hosts.serverAddress)!] = "loom-two-homed"
            let (transfer, log) = try Self.spawn(in: hosts.a, ["client", "--mode", "transfer", "--descriptor", descriptor] + arguments)
            try await Self.awaitExit(transfer)
            let line = try await Self.awaitLine("OK", in: log, seconds: 1)
            let words = line.split(separator: " ")
            #expect(words.count == 7 && words[2] == words[5] && words[3] == words[6], "\(line)")
        }
    }

    @Test("a server killed mid-transfer gives the writer an error, not a hang", arguments: ["tcp", "fabric"])
    func peerKilledMidTransfer(_ backend: String) async throws {
        try await withServer(backend: backend) { hosts, descriptor, serverPID in
            let (client, log) = try Self.spawn(in: hosts.a, ["client", "--mode", "until-error", "--descriptor", descriptor, "--pages", "32"] + Self.clientArguments(hosts, backend: backend))
            _ = try await Self.awaitLine("STARTED", in: log)
            kill(pid_t(serverPID)!, SIGKILL)
            try await Self.awaitExit(client)
            let line = try await Self.awaitLine("ERROR", in: log, seconds: 1)
            #expect(line.contains("ackLost") || line.contains("peerUnavailable"), "\(line)")
        }
    }
}
