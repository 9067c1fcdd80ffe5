/// Which KV blocks a store node keeps on its disk tier (the cluster
/// config's `kvstore.admission`), decided on what a block's history says:
/// at a read (written while the read holds it), when DRAM lets it go, and
/// at a graceful stop.
public enum DiskAdmission: String, Sendable, CaseIterable {
    /// Only blocks read back at least once, from that read on: a one-shot
    /// prompt never costs a disk write, a conversation that came back does.
    case afterFirstReuse = "after-first-reuse"
    /// Every block: at its first read, or when DRAM lets it go.
    case all

    public func admits(reads: Int) -> Bool {
        switch self {
        case .afterFirstReuse: reads >= 1
        case .all: true
        }
    }
}
