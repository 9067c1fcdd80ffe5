import LoomWire
import NIOConcurrencyHelpers

/// The target's end of one writer's doorbell: a thread that takes commit
/// records as they are published, applies each whole write with
/// `TransferTarget.commitShared` (region and admission checks, the
/// immediate counted once per op id) and posts its acknowledgement. It runs
/// until `stop()`, until the writer says it is done, or until the writer
/// breaks the ring's rules, which `join()` reports.
final class DoorbellTarget: Sendable {
    /// How long the thread sleeps unrung before it looks again: only a
    /// safety net, since the writer rings for every record and `stop()` rings too.
    static let idleWait = Duration.milliseconds(500)

    let mapping: DoorbellMapping
    private let stopping: NIOLockedValueBox<Bool>
    private let failure: NIOLockedValueBox<TransferError?>
    private let thread: JoinableThread

    /// Starts the thread; every write on this doorbell counts as coming
    /// from `sender` at `senderEpoch`, as named at setup.
    init(mapping: DoorbellMapping, target: TransferTarget, sender: String, senderEpoch: UInt64) {
        let stopping = NIOLockedValueBox(false)
        let failure = NIOLockedValueBox<TransferError?>(nil)
        let loop = TargetLoop(mapping: mapping, target: target, stopping: stopping,
                              assembler: CommitAssembler(sender: sender, senderEpoch: senderEpoch))
        self.mapping = mapping
        self.stopping = stopping
        self.failure = failure
        thread = JoinableThread(name: "loom-shm-target") {
            var loop = loop
            let error = loop.run()
            failure.withLockedValue { $0 = error }
        }
    }

    func stop() {
        stopping.withLockedValue { $0 = true }
        mapping.targetBell.ring()
    }

    /// Waits for the thread; nil if it was stopped or the writer closed,
    /// else what the writer did wrong.
    func join() async -> TransferError? {
        await thread.join()
        return failure.withLockedValue { $0 }
    }
}

/// What the target's thread owns: its own ring indices and the assembler.
private struct TargetLoop: Sendable {
    let mapping: DoorbellMapping
    let target: TransferTarget
    let stopping: NIOLockedValueBox<Bool>
    var assembler: CommitAssembler
    var commitTail: UInt64 = 0
    var ackHead: UInt64 = 0

    mutating func run() -> TransferError? {
        // Announced however the loop ends, so the writer's waits end now
        // rather than when the RPC connection drops.
        defer {
            mapping.raise(.targetClosed)
            mapping.writerBell.ring()
        }
        let bell = mapping.targetBell
        do {
            while !shouldStop {
                let seen = bell.value()
                if try drain() { continue }
                // Asked again after the flag is up: a stop rung before `seen`
                // was read would otherwise wait out the idle timeout.
                bell.sleep(seen: seen, timeout: DoorbellTarget.idleWait) { shouldStop || ((try? hasWork()) ?? true) }
            }
            return nil
        } catch {
            return error
        }
    }

    private var shouldStop: Bool { stopping.withLockedValue { $0 } || mapping.isRaised(.writerClosed) }

    /// A record is taken only with room for every acknowledgement it can
    /// produce, so posting never has to wait.
    private func hasWork() throws(TransferError) -> Bool {
        guard try mapping.commits.ready(tail: commitTail) > 0 else { return false }
        return try mapping.acks.free(head: ackHead) >= DoorbellGeometry.acksPerRecord
    }

    /// Takes every record that can be taken now; true if there was any.
    private mutating func drain() throws(TransferError) -> Bool {
        let commits = mapping.commits
        let acks = mapping.acks
        var taken = false
        var unannounced = false
        while try hasWork() {
            let record = CommitRecord.decode(from: commits.slot(commitTail))
            commitTail += 1
            commits.release(tail: commitTail)
            taken = true
            unannounced = true
            let actions = assembler.accept(record)
            guard !actions.isEmpty else { continue }
            for action in actions {
                settle(action).encode(into: acks.slot(ackHead))
                ackHead += 1
            }
            // Each acknowledgement goes out at once rather than after the
            // batch: a waiting write should not wait for the writes behind it.
            acks.publish(head: ackHead)
            mapping.writerBell.ring()
            unannounced = false
        }
        // Freed slots matter to a writer waiting for room for a long chain.
        if unannounced { mapping.writerBell.ring() }
        return taken
    }

    private func settle(_ action: CommitAssembler.Action) -> AckRecord {
        switch action {
        case .commit(let ticket, let request):
            do {
                let ack = try target.commitShared(request)
                return AckRecord(ticket: ticket, opID: request.opID, outcome: .applied(duplicate: ack.duplicate))
            } catch {
                return AckRecord(ticket: ticket, opID: request.opID, outcome: .refused(error))
            }
        case .refuse(let ticket, let opID, let error):
            return AckRecord(ticket: ticket, opID: opID, outcome: .refused(error))
        }
    }
}
