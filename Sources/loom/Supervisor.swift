import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization

/// One child process `loom up` starts.
struct Launch: Sendable {
    var name: String
    /// A `taskset` CPU list to pin the process to, as if it had its own machine.
    var cpus: String?
    var arguments: [String]
}

/// Starts the cluster's processes, each with its own log file, notices when
/// one dies, and stops them all (SIGTERM, then SIGKILL) on the way out.
final class Supervisor: Sendable {
    struct Child: @unchecked Sendable {
        // `@unchecked`: `Process` is a class without Sendable conformance;
        // after `run()` only its thread-safe accessors (isRunning,
        // terminationStatus, processIdentifier) are used, under `children`'s lock.
        let name: String
        let process: Process
        let log: String
    }

    let executable: String
    let logs: String
    private let children = Mutex<[Child]>([])

    init(executable: String, logs: String) {
        self.executable = executable
        self.logs = logs
    }

    func start(_ launches: [Launch]) throws {
        for launch in launches {
            let log = "\(logs)/\(launch.name).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            guard let output = FileHandle(forWritingAtPath: log) else {
                throw SupervisorError("cannot write the log file \(log)")
            }
            let process = Process()
            if let cpus = launch.cpus {
                process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
                process.arguments = ["-c", cpus, executable] + launch.arguments
            } else {
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = launch.arguments
            }
            process.standardOutput = output
            process.standardError = output
            process.standardInput = FileHandle.nullDevice
            try process.run()
            children.withLock { $0.append(Child(name: launch.name, process: process, log: log)) }
            FileHandle.standardError.write(Data("loom up: started \(launch.name) (pid \(process.processIdentifier)), log \(log)\n".utf8))
        }
    }

    /// The first child that has exited, with its status.
    func exited() -> (Child, Int32)? {
        children.withLock { children in
            children.first { !$0.process.isRunning }.map { ($0, $0.process.terminationStatus) }
        }
    }

    /// Runs until cancelled; fails if the router dies (nothing can be served
    /// then) and reports workers that die (the router routes around them).
    func watch() async throws {
        var reported: Set<String> = []
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(1))
            let dead = children.withLock { $0.filter { !$0.process.isRunning } }
            for child in dead where !reported.contains(child.name) {
                reported.insert(child.name)
                if child.name == "router" {
                    throw SupervisorError("the router exited with status \(child.process.terminationStatus); see \(child.log)\n\(Self.tail(child.log))")
                }
                FileHandle.standardError.write(Data("loom up: \(child.name) exited with status \(child.process.terminationStatus); see \(child.log)\n".utf8))
            }
        }
    }

    func stopAll() {
        let all = children.withLock { $0 }
        for child in all where child.process.isRunning { kill(child.process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(10)
        while all.contains(where: { $0.process.isRunning }) && Date() < deadline { usleep(50_000) }
        for child in all where child.process.isRunning { kill(child.process.processIdentifier, SIGKILL) }
        FileHandle.standardError.write(Data("loom up: stopped \(all.count) processes\n".utf8))
    }

    static func tail(_ path: String, lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

struct SupervisorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls the router's status page until every expected worker is healthy.
struct HealthWatch {
    let url: String
    let expected: [String]
    let supervisor: Supervisor

    private struct Status: Decodable {
        struct Worker: Decodable { var id: String; var healthy: Bool }
        var workers: [Worker]
    }

    func waitUntilHealthy(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        var healthy: Set<String> = []
        while ContinuousClock.now < deadline {
            if let (child, status) = supervisor.exited() {
                throw SupervisorError("\(child.name) exited with status \(status) while starting; see \(child.log)\n\(Supervisor.tail(child.log))")
            }
            if let status = await fetch() {
                healthy = Set(status.workers.filter(\.healthy).map(\.id))
                if Set(expected).isSubset(of: healthy) { return }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let missing = Set(expected).subtracting(healthy).sorted()
        throw SupervisorError("not healthy after \(timeout): \(missing.joined(separator: ", ")); see their logs")
    }

    private func fetch() async -> Status? {
        guard let endpoint = URL(string: "\(url)/admin/status"),
              let (data, response) = try? await URLSession.shared.data(from: endpoint),
              (response as? HTTPURLResponse)?.statusCode == 200
        else { return nil }
        return try? JSONDecoder().decode(Status.self, from: data)
    }
}
