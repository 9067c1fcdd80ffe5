import Foundation
import Glibc
import LoomTransfer
import Synchronization

/// How a rank writes into one peer's group region: one-sided writes, then
/// an arrival count (the immediate) that makes them visible. Shared memory
/// between ranks on one host, a socket between hosts; the collective does
/// the same thing either way.
protocol PeerLink: AnyObject {
    /// Puts `bytes` at `offset` in the peer's region. The peer may look
    /// only once `post` has followed, and `bytes` must stay valid until
    /// then (a socket link sends them with the post).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int)
    /// Message `count` from this rank is complete in the peer's region.
    /// A failure names the rank it is about (this peer, or another whose
    /// link failed while this one waited for room).
    func post(_ count: UInt32) throws(TensorParallelError)
    var health: PeerHealth { get }
}

/// Whether a peer can still answer, asked from any thread: the compute
/// thread while it waits, the watchdog between steps.
public final class PeerHealth: Sendable {
    public let member: GroupMember
    /// A peer on this host is watched by its pid; one on another host by
    /// its connection (whose pid means nothing here).
    private let socket: Int32?
    private let loss = Mutex<String?>(nil)

    init(member: GroupMember, socket: Int32? = nil) {
        self.member = member
        self.socket = socket
    }

    /// nil while the peer can answer; otherwise what became of it.
    public func lost() -> String? {
        if let reason = loss.withLock({ $0 }) { return reason }
        guard let socket else { return Self.isAlive(member.pid) ? nil : "exited" }
        // Only looks: the compute thread alone reads the socket. A peer
        // that exits, or whose host's keepalives go unanswered, hangs up.
        let hungUp = Int16(POLLHUP | POLLERR) | 0x2000  // POLLRDHUP
        var probe = pollfd(fd: socket, events: 0x2000, revents: 0)
        return poll(&probe, 1, 0) > 0 && probe.revents & hungUp != 0 ? "closed its connection" : nil
    }

    /// The first reason sticks: later ones are consequences of it.
    func markLost(_ reason: String) {
        loss.withLock { if $0 == nil { $0 = reason } }
    }

    /// Whether `pid` runs on: a peer that died is gone, or a zombie until
    /// its parent (which may be this process) reaps it.
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno != ESRCH else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }
}

/// A peer on this host: its region is mapped here, a write is a copy into
/// it, and the post is a release-store of this rank's arrival word there.
final class SharedMemoryLink: PeerLink {
    let peer: UnsafeMutableRawBufferPointer
    let layout: GroupRegionLayout
    let source: Int
    let health: PeerHealth

    /// `layout` is the peer's; `source` is this rank.
    init(to member: GroupMember, layout: GroupRegionLayout, source: Int) throws {
        peer = try SharedMemoryRegion.mapPeer(member.region)
        self.layout = layout
        self.source = source
        health = PeerHealth(member: member)
    }

    deinit { munmap(peer.baseAddress, peer.count) }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        (peer.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
    }

    func post(_ count: UInt32) {
        ArrivalWords(base: peer.baseAddress!, layout: layout).post(from: source, count: count)
    }
}
