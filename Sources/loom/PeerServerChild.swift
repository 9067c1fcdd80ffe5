import Foundation
import LoomWire

/// A server a bench starts for itself: this executable again, so `loom`
/// alone is enough; `loom bench peer-server` by default, or another
/// subcommand that announces where it listens (`loom kvstore`). Its stdout
/// and stderr go to files: we poll the first for the line saying where it
/// listens, and show the second if it dies before that.
struct PeerServerChild {
    let process = Process()
    let stdout: URL
    let stderr: URL
    /// The address in a line of its stdout, if the line says it listens.
    let listening: @Sendable (Substring) throws -> RPCAddress?

    /// Starts one with `arguments` after `bench peer-server`, runs `body`
    /// with its address, and stops it, also when `body` throws.
    /// `wrapper` runs it inside another command, e.g. `ip netns exec NS`.
    static func with<R>(
        _ arguments: [String], wrapper: [String] = [], progress: (String) -> Void, _ body: (RPCAddress) async throws -> R
    ) async throws -> R {
        // --parent: the child exits by itself if we die without stopping it.
        try await with(command: ["bench", "peer-server", "--parent", "\(getpid())"] + arguments, listening: Self.listeningLine,
                       wrapper: wrapper, progress: progress, body)
    }

    static func with<R>(
        command arguments: [String], listening: @escaping @Sendable (Substring) throws -> RPCAddress?, wrapper: [String] = [],
        progress: (String) -> Void, _ body: (RPCAddress) async throws -> R
    ) async throws -> R {
        let child = try PeerServerChild(arguments, listening: listening, wrapper: wrapper)
        defer { child.stop() }
        let address = try await child.waitUntilListening()
        progress("started \(arguments.prefix(2).joined(separator: " ")) (pid \(child.process.processIdentifier)) at \(address)")
        return try await body(address)
    }

    /// A peer server's `LISTENING <address> …` line.
    static func listeningLine(_ line: Substring) throws -> RPCAddress? {
        guard line.hasPrefix("LISTENING ") else { return nil }
        let words = line.split(separator: " ")
        guard words.count >= 2, let address = PeerAddress.parse(String(words[1])) else {
            throw BenchError("the peer server printed a LISTENING line this build cannot read: \(line)")
        }
        return address
    }

    private init(_ arguments: [String], listening: @escaping @Sendable (Substring) throws -> RPCAddress?, wrapper: [String]) throws {
        self.listening = listening
        let directory = FileManager.default.temporaryDirectory
        let name = "loom-bench-peer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        stdout = directory.appendingPathComponent("\(name).out")
        stderr = directory.appendingPathComponent("\(name).err")
        for file in [stdout, stderr] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        if wrapper.isEmpty {
            process.executableURL = URL(fileURLWithPath: UpCommand.executablePath)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = wrapper + [UpCommand.executablePath] + arguments
        }
        process.standardOutput = try FileHandle(forWritingTo: stdout)
        process.standardError = try FileHandle(forWritingTo: stderr)
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            removeFiles()
            throw BenchError("cannot start \(UpCommand.executablePath) as a bench server: \(error)")
        }
    }

    /// The address from the `LISTENING` line, which a debug build with a
    /// fabric endpoint takes a few seconds to print.
    private func waitUntilListening(timeout: Duration = .seconds(60)) async throws -> RPCAddress {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOf: stdout, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                if let address = try listening(line) { return address }
            }
            guard process.isRunning else {
                throw BenchError("the bench server (\(commandLine)) exited with status \(process.terminationStatus) before listening:\n\(errors)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("the bench server (\(commandLine)) did not listen within \(timeout); it wrote:\n\(errors)")
    }

    /// SIGTERM lets it release its /dev/shm region; SIGKILL if it hangs.
    private func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        removeFiles()
    }

    private func removeFiles() {
        for file in [stdout, stderr] { try? FileManager.default.removeItem(at: file) }
    }

    private var commandLine: String {
        ([process.executableURL?.path ?? "loom"] + (process.arguments ?? [])).joined(separator: " ")
    }

    private var errors: String {
        let text = (try? String(contentsOf: stderr, encoding: .utf8)) ?? ""
        return text.isEmpty ? "(nothing on stderr)" : text.split(separator: "\n").suffix(20).joined(separator: "\n")
    }
}

/// Where a peer server listens, as people and scripts write it: `HOST:PORT`,
/// or `tcp://HOST:PORT` as its `LISTENING` line prints it.
enum PeerAddress {
    static func parse(_ text: String) -> RPCAddress? {
        var rest = Substring(text)
        if rest.hasPrefix("tcp://") { rest = rest.dropFirst("tcp://".count) }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        var host = rest[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }  // [::1]:7461
        return host.isEmpty ? nil : .tcp(host: String(host), port: port)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
