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
/// log) and which have ended, for the health watch and for the messages.
final class Children: Sendable {
    struct Child: Sendable {
        var name: String
        var log: String
        var pid: pid_t?
        /// Why it is gone: its exit status, or why it could not start.
        var ended: String?
    }

    private let children = Mutex<[String: Child]>([:])

    func started(_ name: String, pid: pid_t, log: String) {
        children.withLock { $0[name] = Child(name: name, log: log, pid: pid) }
        FileHandle.standardError.write(Data("loom up: started \(name) (pid \(pid)), log \(log)\n".utf8))
    }

    func ended(_ name: String, log: String, _ why: String) {
        children.withLock { $0[name, default: Child(name: name, log: log)].ended = why }
    }

    /// A child that is gone, if any.
    var firstEnded: Child? {
        children.withLock { $0.values.filter { $0.ended != nil }.min { $0.name < $1.name } }
    }
}

/// One child process of `loom up`: runs it until it exits, with its output
/// in its log. Cancelled (the group shutting down), it stops the child with
/// SIGTERM, so the child drains, then SIGKILL if it does not exit in time.
struct ChildProcess: Sendable {
    let launch: Launch
    let executable: String
    let logs: String
    let children: Children

    var log: String { "\(logs)/\(launch.name).log" }

    /// How the child ended, or nil when it was stopped on purpose.
    func run() async -> String? {
        let status: TerminationStatus
        do {
            status = try await spawn()
        } catch is CancellationError {
            return nil
        } catch {
            let why = "could not start: \(error)"
            children.ended(launch.name, log: log, why)
            return why
        }
        guard !Task.isCancelled else { return nil }
        children.ended(launch.name, log: log, "\(status)")
        return "exited (\(status))"
    }

    private func spawn() async throws -> TerminationStatus {
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
        return try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments), platformOptions: platformOptions,
            input: .none, output: .fileDescriptor(output, closeAfterSpawningProcess: true), error: .combinedWithOutput
        ) { execution in
            children.started(launch.name, pid: execution.processIdentifier.value, log: log)
        }.terminationStatus
    }

    static func tail(_ path: String, lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// The router as a service: its exit, or failure to start, ends the cluster.
struct RouterProcess: Service {
    let child: ChildProcess

    func run() async throws {
        let ended = await cancelWhenGracefulShutdown { await child.run() }
        if let ended {
            throw SupervisorError("the router \(ended); see \(child.log)\n\(ChildProcess.tail(child.log))")
        }
    }
}

/// Every worker as one service, so a graceful shutdown stops them all at
/// once (each drains in parallel) while the router, stopped after them,
/// still takes their deregistrations. A worker that dies is reported; the
/// router routes around it.
struct WorkerProcesses: Service {
    let workers: [ChildProcess]

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for worker in workers {
                    group.addTask {
                        guard let ended = await worker.run() else { return }
                        FileHandle.standardError.write(Data("loom up: \(worker.launch.name) \(ended); see \(worker.log)\n".utf8))
                    }
                }
            }
        }
        // All workers gone on their own: the router still serves (and
        // answers 429/503), until the group stops.
        try? await gracefulShutdown()
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
        try await stoppedGracefully { try await waitUntilHealthy() }
    }

    private func waitUntilHealthy() async throws {
        let deadline = ContinuousClock.now + timeout
        var healthy: Set<String> = []
        while ContinuousClock.now < deadline {
            if let child = children.firstEnded {
                throw SupervisorError("\(child.name) \(child.ended ?? "ended") while starting; see \(child.log)\n\(ChildProcess.tail(child.log))")
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
