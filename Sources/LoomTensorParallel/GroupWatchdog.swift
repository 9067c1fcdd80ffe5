import Foundation
import Synchronization

/// Watches the other ranks of a group between steps (by pid on this host,
/// by connection on others), so an idle leader learns of a dead rank too (inside a step the collective's
/// own waits notice). A group missing a rank cannot compute anything, so
/// whoever owns it stops it whole: the router then sees the worker go, and
/// the group is restarted whole.
public final class GroupWatchdog: Sendable {
    private let stopping = Atomic<Bool>(false)

    /// Stops watching: the owner is ending the group on purpose, and its
    /// ranks leaving is not a loss.
    public func stop() { stopping.store(true, ordering: .sequentiallyConsistent) }

    /// Calls `lost` (once, on a thread of its own) with the first rank found
    /// gone and what became of it; polls every `interval`.
    @discardableResult
    public static func start(_ peers: [PeerHealth], every interval: Duration = .milliseconds(100),
                             lost: @escaping @Sendable (GroupMember, String) -> Void) -> GroupWatchdog {
        let watchdog = GroupWatchdog()
        guard !peers.isEmpty else { return watchdog }
        let thread = Thread {
            while !watchdog.stopping.load(ordering: .sequentiallyConsistent) {
                if let (peer, reason) = peers.lazy.compactMap({ peer in peer.lost().map { (peer, $0) } }).first {
                    guard !watchdog.stopping.load(ordering: .sequentiallyConsistent) else { return }
                    lost(peer.member, reason)
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
