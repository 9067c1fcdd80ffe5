import Foundation
import Synchronization

/// Watches the other ranks of a group on this host between steps, so an
/// idle leader learns of a dead rank too (inside a step the collective's
/// own waits notice). A group missing a rank cannot compute anything, so
/// whoever owns it stops it whole: the router then sees the worker go, and
/// the group is restarted whole.
public final class GroupWatchdog: Sendable {
    private let stopping = Atomic<Bool>(false)

    /// Stops watching: the owner is ending the group on purpose, and its
    /// ranks leaving is not a loss.
    public func stop() { stopping.store(true, ordering: .sequentiallyConsistent) }

    /// Calls `lost` (once, on a thread of its own) with the first rank found
    /// dead; polls every `interval`.
    @discardableResult
    public static func start(_ members: [GroupMember], watchedBy rank: Int, every interval: Duration = .milliseconds(100),
                             lost: @escaping @Sendable (GroupMember) -> Void) -> GroupWatchdog {
        let watchdog = GroupWatchdog()
        let here = members.first { $0.rank == rank }?.hostID
        let watched = members.filter { $0.rank != rank && $0.hostID == here }
        guard !watched.isEmpty else { return watchdog }
        let thread = Thread {
            while !watchdog.stopping.load(ordering: .sequentiallyConsistent) {
                if let dead = watched.first(where: { !GroupCollective.isAlive($0.pid) }) {
                    guard !watchdog.stopping.load(ordering: .sequentiallyConsistent) else { return }
                    lost(dead)
                    return
                }
                Thread.sleep(forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
            }
        }
        thread.name = "tp-watchdog"
        thread.start()
        return watchdog
    }
}
