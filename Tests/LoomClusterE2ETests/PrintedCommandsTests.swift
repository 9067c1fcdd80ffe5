import Foundation
import LoomTesting
import Testing

/// Every command a user is shown (by `loom up`'s banner and by the README's
/// local-cluster section) is run here exactly as printed, against a real
/// cluster, so none of them ships broken again.
@Suite(.serialized) struct PrintedCommandsTests {
    @Test func theCommandsLoomUpPrintsWork() async throws {
        let folder = temporaryPath("loom-up-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let ports = try FreePorts.take(5)
        let config = "\(folder)/cluster.yaml"
        try """
        model: \(try TestModel.path())
        router: {port: \(ports[0]), rpc_port: \(ports[1]), heartbeat_interval_ms: 100, heartbeat_timeout_ms: 1500}
        workers:
          - {name: prefill-0, role: prefill, port: \(ports[2]), threads: 1, kv_blocks: 256}
          - {name: decode-0, role: decode, port: \(ports[3]), threads: 1, kv_blocks: 256}
        kvstores:
          - {name: kvstore-0, port: \(ports[4]), dram_mib: 16}
        logs: logs
        """.write(toFile: config, atomically: true, encoding: .utf8)

        let up = try UpProcess(arguments: ["up", "--config", config, "--startup-timeout", "120"], directory: folder)
        defer { up.stop() }
        let banner = try up.waitForBanner()
        let status = try #require(banner.command(after: "status:"), "no status command in:\n\(banner.text)")
        let tryRequest = try #require(banner.command(after: "try:"), "no sample request in:\n\(banner.text)")
        #expect(status.hasPrefix("loomctl --router http://127.0.0.1:\(ports[0]) status"))

        let table = try Shell.run(status)
        #expect(table.status == 0, "\(table.output)")
        for member in ["prefill-0", "decode-0", "kvstore-0"] {
            #expect(table.output.contains(member), "\(table.output)")
        }
        #expect(banner.text.contains("kvstore: kvstore-0 (16 MiB, 127.0.0.1:\(ports[4]))"), "\(banner.text)")
        #expect(!table.output.contains("dead"), "\(table.output)")
        let cacheCommand = try #require(banner.command(after: "cache:"), "no cache command in:\n\(banner.text)")
        let cache = try Shell.run(cacheCommand)
        #expect(cache.status == 0 && cache.output.contains("store dram") && cache.output.contains("kvstore-0"), "\(cache.output)")

        let answer = try Shell.run(tryRequest)
        #expect(answer.status == 0, "\(answer.output)")
        let object = try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any]
        let message = ((object?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        #expect(message?.isEmpty == false, "\(answer.output)")

        // The option is declared once: after the subcommand, and from the environment.
        let url = "http://127.0.0.1:\(ports[0])"
        let after = try Shell.run("loomctl status --router \(url) --json")
        #expect(after.status == 0 && after.output.contains("\"decode-0\""), "\(after.output)")
        let fromEnvironment = try Shell.run("LOOM_ROUTER=\(url) loomctl status --json")
        #expect(fromEnvironment.status == 0 && fromEnvironment.output.contains("\"prefill-0\""), "\(fromEnvironment.output)")
        let nowhere = try Shell.run("loomctl --router http://127.0.0.1:1 status")
        #expect(nowhere.status != 0)
        #expect(nowhere.output.contains("cannot reach the router at http://127.0.0.1:1"), "\(nowhere.output)")

        let children = up.childPIDs()
        #expect(children.count == 4, "router, two workers and a store node: \(children)")
        try up.interrupt()
        for pid in children {
            #expect(kill(pid, 0) != 0, "child \(pid) outlived loom up")
        }
    }

    /// The README's local-cluster block, line for line, from the package
    /// root, on the ports `Configs/local.yaml` names.
    @Test func theReadmesLocalClusterCommandsWork() async throws {
        let commands = try Readme.localClusterCommands()
        let start = try #require(commands.first)
        #expect(start == ".build/release/loom up --config Configs/local.yaml")
        let up = try UpProcess(shell: start, directory: Readme.packageRoot.path)
        defer { up.stop() }
        _ = try up.waitForBanner()
        for command in commands.dropFirst() {
            let result = try Shell.run(command, directory: Readme.packageRoot.path)
            #expect(result.status == 0, "\(command)\n\(result.output)")
            if command.contains("curl") {
                #expect(result.output.contains("data: "), "the README's request streams: \(result.output)")
            } else if command.contains(" cache") {
                #expect(result.output.contains("store disk") && result.output.contains("kvstore-0"), "\(command)\n\(result.output)")
            } else {
                #expect(result.output.contains("decode-1"), "\(command)\n\(result.output)")
            }
        }
        try up.interrupt()
    }
}

/// The README's single-process commands, from the package root as printed.
@Suite(.serialized) struct ReadmeCommandsTests {
    @Test func theUsingItCommandsWork() throws {
        let commands = try Readme.commands(under: "## Using it")
        // The build line made the binaries under test; running it here
        // would only rebuild them without the test flags.
        #expect(commands.first == "swift build -c release")
        for command in commands.dropFirst() {
            let result = try Shell.run(command, directory: Readme.packageRoot.path)
            #expect(result.status == 0, "\(command)\n\(result.output)")
            if command.contains("--json") {
                #expect(result.output.contains("\"tokens\"") && result.output.contains("Paris"), "\(command)\n\(result.output)")
            } else if command.contains("tokenize") {
                #expect(result.output.hasPrefix("[1,"), "<|im_start|> became its id: \(result.output)")
            } else {
                #expect(result.output.count > 20, "\(command)\n\(result.output)")
            }
        }
    }

    @Test func theServerCommandsWork() async throws {
        let commands = try Readme.commands(under: "### The OpenAI-compatible server")
        let start = try #require(commands.first)
        #expect(start == ".build/release/loom serve --port 8000")
        let serve = try UpProcess(shell: start, directory: Readme.packageRoot.path)
        defer { serve.stop() }
        _ = try serve.waitForLine(containing: "listening on")
        for command in commands.dropFirst() {
            let result = try Shell.run(command, directory: Readme.packageRoot.path)
            #expect(result.status == 0 && result.output.contains("data: "), "\(command)\n\(result.output)")
        }
        try serve.interrupt()
        #expect(serve.process.terminationStatus == 0, "\(serve.log)")
    }
}

/// A long-running command (`loom up`, `loom serve`) as a user runs it;
/// `interrupt()` sends what Ctrl-C sends.
final class UpProcess: @unchecked Sendable {
    // `@unchecked`: used only by the test that owns it, one call at a time.
    let process = Process()
    private let stdout = Pipe()
    let stderrLog: String

    convenience init(arguments: [String], directory: String) throws {
        try self.init(executable: BuiltExecutable.url("loom").path, arguments: arguments, directory: directory)
    }

    convenience init(shell command: String, directory: String) throws {
        try self.init(executable: "/bin/bash", arguments: ["-c", "exec " + command], directory: directory)
    }

    private init(executable: String, arguments: [String], directory: String) throws {
        stderrLog = temporaryPath("loom-up-\(UUID().uuidString.prefix(8)).err")
        FileManager.default.createFile(atPath: stderrLog, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["LOOM_MODEL"] = try TestModel.path()
        process.environment = environment
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrLog))
        try process.run()
    }

    struct Banner {
        var text: String

        /// The command printed after `label`, continuation lines joined.
        func command(after label: String) -> String? {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }) else { return nil }
            var command = String(lines[start].trimmingCharacters(in: .whitespaces).dropFirst(label.count))
            var index = start
            while command.hasSuffix("\\"), index + 1 < lines.count {
                index += 1
                command = String(command.dropLast()) + " " + lines[index].trimmingCharacters(in: .whitespaces)
            }
            return command.trimmingCharacters(in: .whitespaces)
        }
    }

    /// Reads stdout until the banner's last line; fails with the log if
    /// `loom up` exits first.
    func waitForBanner() throws -> Banner {
        Banner(text: try waitForLine(containing: "Ctrl-C stops every process."))
    }

    /// Everything printed up to a line containing `marker`; fails with the
    /// log if the process exits first.
    func waitForLine(containing marker: String) throws -> String {
        var seen = ""
        while !seen.contains(marker) {
            let data = stdout.fileHandleForReading.availableData
            guard !data.isEmpty else {
                throw ClusterDidNotStart(description: "the process exited before printing '\(marker)':\n\(seen)\n\(log)")
            }
            seen += String(decoding: data, as: UTF8.self)
        }
        return seen
    }

    var log: String { (try? String(contentsOfFile: stderrLog, encoding: .utf8)) ?? "" }

    /// The pids `loom up` reported starting.
    func childPIDs() -> [pid_t] {
        guard let pattern = try? NSRegularExpression(pattern: #"\(pid (\d+)\)"#) else { return [] }
        let text = log
        return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).flatMap { pid_t(text[$0]) }
        }
    }

    /// SIGINT, as Ctrl-C sends it; fails unless `loom up` exits within 30 s.
    func interrupt() throws {
        kill(process.processIdentifier, SIGINT)
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        guard !process.isRunning else {
            throw ClusterDidNotStart(description: "loom up did not stop within 30 s of SIGINT:\n\(log)")
        }
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A command line as a user types it, with this build's `loom` and
/// `loomctl` first on the PATH.
enum Shell {
    static func run(_ command: String, directory: String? = nil) throws -> (status: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = BuiltExecutable.url("loomctl").deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["LOOM_ROUTER"] = nil
        return try Tool.run("/bin/bash", ["-c", command], environment: environment, directory: directory)
    }
}

/// The README's shell blocks.
enum Readme {
    static var packageRoot: URL { Fixtures.root.deletingLastPathComponent().deletingLastPathComponent() }

    static func localClusterCommands() throws -> [String] {
        try commands(under: "## The local cluster")
    }

    /// The commands of the first `sh` block under `heading`, continuation
    /// lines joined, comments dropped.
    static func commands(under heading: String) throws -> [String] {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let section = text.range(of: heading),
              let open = text.range(of: "```sh\n", range: section.upperBound..<text.endIndex),
              let close = text.range(of: "```", range: open.upperBound..<text.endIndex) else {
            throw ClusterDidNotStart(description: "README.md has no sh block under '\(heading)'")
        }
        var commands: [String] = []
        var pending = ""
        for line in text[open.upperBound..<close.lowerBound].split(separator: "\n") {
            var line = String(line)
            if let hash = line.range(of: "  # ") { line = String(line[..<hash.lowerBound]) }
            line = line.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("\\") {
                pending += line.dropLast() + " "
            } else {
                commands.append(pending + line)
                pending = ""
            }
        }
        return commands.filter { !$0.isEmpty }
    }
}

/// Ports the kernel hands out now, for configs that must name theirs.
enum FreePorts {
    static func take(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for socket in sockets { close(socket) } }
        return try (0..<count).map { _ in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard bound else { throw ClusterDidNotStart(description: "could not find a free port") }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }
}
