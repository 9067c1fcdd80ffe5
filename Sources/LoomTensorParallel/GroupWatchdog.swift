import Foundation

/// Watches the other ranks of a group on this host between steps, so an
/// idle leader learns of a dead rank too (inside a step the collective's
/// own waits notice). A group missing a rank cannot compute anything, so
/// whoever owns it stops it whole: the router then sees the worker go, and
/// the group is restarted whole.
public enum GroupWatchdog {
    /// Calls `lost` (once, on a thread of its own) with the first rank found
    /// dead; polls every `interval`.
    public static func start(_ members: [GroupMember], watchedBy rank: Int, every interval: Duration = .milliseconds(100),
                             lost: @escaping @Sendable (GroupMember) -> Void) {
        let here = members.first { $0.rank == rank }?.hostID
        let watched = members.filter { $0.rank != rank && $0.hostID == here }
        guard !watched.isEmpty else { return }
        let thread = Thread {
            while true {
                if let dead = watched.first(where: { !GroupCollective.isAlive($0.pid) }) {
                    lost(dead)
                    return
                }
                Thread.sleep(forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
            }
        }
        thread.name = "tp-watchdog"
        thread.start()
    }
}
