import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import ServiceLifecycle
import Subprocess
import Synchronization
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// One child process `loom up` starts.
struct Launch: Sendable {
    var name: String
    /// A `taskset` CPU list to pin the process to, as if it had its own machine.
    var cpus: String?
    var arguments: [String]
}

/// What `loom up` knows of its children: which started (with their pid and
/// log) and which have exited, for the health watch and for the messages.
final class Children: Sendable {
    struct Child: Sendable {
        var name: String
        var pid: pid_t
        var log: String
        var exit: TerminationStatus?
    }

    private let children = Mutex<[String: Child]>([:])

    func started(_ name: String, pid: pid_t, log: String) {
        children.withLock { $0[name] = Child(name: name, pid: pid, log: log) }
        FileHandle.standardError.write(Data("loom up: started \(name) (pid \(pid)), log \(log)\n".utf8))
    }

    func exited(_ name: String, _ status: TerminationStatus) {
        children.withLock { $0[name]?.exit = status }
    }

    /// A child that exited, if any.
    var firstExited: Child? {
        children.withLock { $0.values.filter { $0.exit != nil }.min { $0.name < $1.name } }
    }
}

/// One child of `loom up` as a service: it runs until the child exits, and
/// a graceful shutdown of the group (Ctrl-C, SIGTERM) stops the child with
/// SIGTERM, so it drains, then SIGKILL if it does not exit in time.
struct ChildProcess: Service {
    let launch: Launch
    let executable: String
    let logs: String
    let children: Children
    /// The router's exit ends the cluster; a worker's is only reported
    /// (the router routes around it).
    var essential: Bool { launch.name == "router" }

    func run() async throws {
        let log = "\(logs)/\(launch.name).log"
        let output = try FileDescriptor.open(
            FilePath(log), .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        var options = PlatformOptions()
        // Its own process group: Ctrl-C reaches `loom up`, which stops the
        // children in order, instead of every process at once.
        options.processGroupID = 0
        // Longer than a worker's own drain bound (30 s by default).
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(40))]
        let platformOptions = options
        let (path, arguments) = launch.cpus.map { ("/usr/bin/taskset", ["-c", $0, executable] + launch.arguments) }
            ?? (executable, launch.arguments)
        let status: TerminationStatus
        do {
            status = try await cancelWhenGracefulShutdown {
                try await Subprocess.run(
                    .path(FilePath(path)), arguments: Arguments(arguments), platformOptions: platformOptions,
                    input: .none, output: .fileDescriptor(output, closeAfterSpawningProcess: true), error: .combinedWithOutput
                ) { execution in
                    children.started(launch.name, pid: execution.processIdentifier.value, log: log)
                }.terminationStatus
            }
        } catch is CancellationError {
            return
        }
        children.exited(launch.name, status)
        // A graceful shutdown ends the child too; only an exit of its own counts.
        guard !Task.isShuttingDownGracefully else { return }
        let message = "\(launch.name) exited (\(status)); see \(log)\n\(Self.tail(log))"
        if essential { throw SupervisorError(message) }
        FileHandle.standardError.write(Data("loom up: \(message)\n".utf8))
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

/// Waits until every expected worker is healthy, prints the banner, and
/// is done; fails if a child exits first or time runs out.
struct Readiness: Service {
    let url: String
    let expected: [String]
    let children: Children
    let timeout: Duration
    let banner: String

    private struct Status: Decodable {
        struct Worker: Decodable { var id: String; var healthy: Bool }
        var workers: [Worker]
    }

    func run() async throws {
        let deadline = ContinuousClock.now + timeout
        var healthy: Set<String> = []
        while ContinuousClock.now < deadline {
            if let child = children.firstExited {
                throw SupervisorError("\(child.name) exited (\(child.exit.map { "\($0)" } ?? "?")) while starting; see \(child.log)\n\(ChildProcess.tail(child.log))")
            }
            if let status = await fetch() {
                healthy = Set(status.workers.filter(\.healthy).map(\.id))
                if Set(expected).isSubset(of: healthy) {
                    announce(banner)
                    return
                }
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
