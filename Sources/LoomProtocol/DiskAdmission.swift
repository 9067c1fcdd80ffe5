/// Which KV blocks a store node writes to its disk tier when DRAM lets go
/// of them (the cluster config's `kvstore.admission`). A policy decides on
/// what a block's history says, once, at eviction (or at shutdown).
public enum DiskAdmission: String, Sendable, CaseIterable {
    /// Only blocks read back at least once: a one-shot prompt never costs
    /// a disk write, a conversation that came back does.
    case afterFirstReuse = "after-first-reuse"
    /// Every block DRAM lets go of.
    case all

    public func admits(reads: Int) -> Bool {
        switch self {
        case .afterFirstReuse: reads >= 1
        case .all: true
        }
    }
}
