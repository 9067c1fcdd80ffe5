/// A change in which blocks a worker can serve from its prefix cache. The
/// router keeps an exact index of every worker's cache by replaying these.
public enum KVCacheEvent: Sendable, Equatable {
    /// A full block became reusable under `hash`; `parent` is the hash of the
    /// block before it in its chain (nil for a first block).
    case stored(hash: BlockHash, parent: BlockHash?)
    /// The block with `hash` was evicted and its memory reused.
    case removed(hash: BlockHash)
}
