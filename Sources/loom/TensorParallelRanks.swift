import Foundation
import Synchronization
import LoomModel
import LoomTensorParallel
import LoomTransfer
import LoomWire
import LoomWorker

/// A rank other than the leader, as a process: joins the group, loads its
/// shard at the leader's sizes, and runs the leader's steps until the
/// leader stops the group (exit 0) or the group breaks (exit 1).
enum FollowerProcess {
    static func run(_ spec: GroupSpec, modelPath: String, threads: Int) async throws {
        var spec = spec
        spec.threads = threads
        let signals = StopSignals.leaveToLeader(rank: spec.rank, grace: .seconds(40))
        defer { signals.forEach { $0.cancel() } }
        let file = try GGUFFile(path: modelPath)
        let split = try TensorSplit(file: file, size: spec.size)
        let group = try await TensorParallelGroup.form(spec, file: file, split: split)
        let g = group.geometry
        let model = try Transformer(
            file: file, threads: threads, maxBatchTokens: g.maxBatchTokens, maxLogitRows: g.maxLogitRows, shard: split.shards[spec.rank])
        announce("loom worker: tensor-parallel rank \(spec.rank) of \(spec.size) joined \(spec.leader.hostPort) (\(group.routes)); \(split.shards[spec.rank])")
        // The pool is registered, so prefill ranks can write this rank's heads in.
        let kv = try await RankKV(
            rank: spec.rank, heads: split.shards.map(\.kvHeads), config: model.config, blockSize: g.blockSize,
            bytes: FollowerRank.poolBytes(model: model, group: group), host: group.dataHost.isEmpty ? "127.0.0.1" : group.dataHost)
        try await group.reportKVPool(region: kv.pool.descriptor, transferHost: kv.host, transferPort: kv.port, hostID: group.hostID)
        let follower = UncheckedSendable(try FollowerRank(model: model, group: group, pool: kv.pool.bytes.baseAddress!, exporter: kv))
        // A rank's compute waits on its peers by spinning and sleeping.
        let steps: Int
        do {
            steps = try await onOwnThread { try follower.value.run() }
        } catch {
            await kv.close(within: .zero)
            throw error
        }
        await kv.close()
        let waited = follower.value.waited
        announce("loom worker: rank \(spec.rank) stopped by its leader after \(steps) steps; waited \(waited) on its peers within steps")
    }
}

/// `@unchecked Sendable`: carries a value to the one thread that uses it
/// from then on (the hand-over is the thread's start).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A group for one run of `loom generate` or `loom bench model`: rank 0 in
/// this process, ranks 1..<N as `loom worker --tp-rank` children on this
/// host, which exit when it stops them or dies; or, with `--tp-peers`,
/// ranks started by hand wherever they reach this process.
final class LocalGroup {
    let group: TensorParallelGroup
    private let children: [Process]

    static func start(file: GGUFFile, split: TensorSplit, leader model: Transformer, threads: Int, geometry: GroupGeometry, options: LocalGroupOptions) async throws -> LocalGroup {
        let size = split.shards.count
        let spec = GroupSpec(
            size: size, rank: 0, leader: options.tpPeers ?? .tcp(host: "127.0.0.1", port: 0), joinTimeout: .seconds(options.tpJoinSeconds),
            threads: threads, transport: options.tpTransport)
        let leader = try await GroupLeader.listen(spec, file: file, split: split, geometry: geometry)
        let children: [Process] = options.tpPeers != nil ? [] : try (1..<size).map { rank in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: UpCommand.executablePath)
            process.arguments = [
                "worker", "--name", "tp-rank-\(rank)", "--model", file.path, "--threads", "\(threads)",
                "--tp-size", "\(size)", "--tp-rank", "\(rank)", "--tp-peers", leader.address.hostPort, "--tp-transport", options.tpTransport.rawValue,
            ]
            process.standardOutput = FileHandle.standardError
            try process.run()
            return process
        }
        if options.tpPeers != nil {
            stderr("tensor parallel: waiting \(options.tpJoinSeconds) s for ranks 1..<\(size) to join at \(leader.address.hostPort); start them, on any host that reaches it, with:")
            for rank in 1..<size {
                stderr("  loom worker --name tp-rank-\(rank) --model \(file.path) --threads \(threads) --tp-size \(size) --tp-rank \(rank) --tp-peers \(leader.address.hostPort)")
            }
        }
        do {
            let group = try await formWatching(children, leader: leader)
            model.collective = group.collective.value
            stderr("tensor parallel: \(size) ranks joined (\(group.routes))")
            return LocalGroup(group: group, children: children)
        } catch {
            for child in children where child.isRunning { child.terminate() }
            throw error
        }
    }

    /// Forms the group, failing as soon as a child exits instead of
    /// waiting out the join timeout.
    private static func formWatching(_ children: [Process], leader: GroupLeader) async throws -> TensorParallelGroup {
        let watched = UncheckedSendable(children)
        return try await withThrowingTaskGroup(of: TensorParallelGroup?.self) { tasks in
            tasks.addTask { try await leader.form() }
            tasks.addTask {
                while true {
                    try await Task.sleep(for: .milliseconds(100))
                    if let (rank, child) = watched.value.enumerated().first(where: { !$0.element.isRunning }) {
                        throw TensorParallelError(.joinTimeout, "rank \(rank + 1) (pid \(child.processIdentifier)) exited with status \(child.terminationStatus) before the group formed; its error is above")
                    }
                }
            }
            defer { tasks.cancelAll() }
            return try await tasks.next()!!
        }
    }

    private init(group: TensorParallelGroup, children: [Process]) {
        self.group = group
        self.children = children
    }

    /// Ends the followers' loops and waits (briefly) for them to exit.
    func stop() {
        group.collective.value.stop()
        let deadline = Date().addingTimeInterval(5)
        for child in children {
            while child.isRunning && Date() < deadline { usleep(10_000) }
            if child.isRunning { child.terminate() }
        }
    }
}

extension RankKV: RankKVExporter {}

/// Stop signals, as a follower takes them. Ctrl-C reaches every process of
/// the terminal, and `loom up` signals each child; but the leader drains
/// first and then stops its group, and a rank that left at once would
/// break the steps the drain still runs. So a follower waits for its
/// leader, and leaves by itself only after `grace` or a second signal.
enum StopSignals {
    static func leaveToLeader(rank: Int, grace: Duration) -> [any DispatchSourceSignal] {
        let seen = Mutex(false)
        return [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let again = seen.withLock { earlier in
                    defer { earlier = true }
                    return earlier
                }
                guard !again else { exit(1) }
                FileHandle.standardError.write(Data("loom worker: rank \(rank) asked to stop; its leader stops the group once it has drained (up to \(grace); again to stop now)\n".utf8))
                DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Int(grace.components.seconds))) { exit(0) }
            }
            source.resume()
            return source
        }
    }
}
