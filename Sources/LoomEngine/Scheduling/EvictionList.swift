/// Unreferenced cached blocks in least-recently-released order: a doubly
/// linked list threaded through arrays indexed by block id, so removing a
/// block that a new request reuses is O(1) with no allocation per step.
struct EvictionList: Sendable {
    private static let none: Int32 = -1
    private var previous: [Int32]
    private var next: [Int32]
    private var member: [Bool]
    private var head: Int32 = none
    private var tail: Int32 = none
    private(set) var count = 0

    init(capacity: Int) {
        previous = Array(repeating: Self.none, count: capacity)
        next = Array(repeating: Self.none, count: capacity)
        member = Array(repeating: false, count: capacity)
    }

    func contains(_ block: BlockID) -> Bool { member[Int(block)] }

    /// The block to evict first.
    var first: BlockID? { head == Self.none ? nil : head }

    /// Appends as the most recently released.
    mutating func append(_ block: BlockID) {
        precondition(!member[Int(block)], "block \(block) is already evictable")
        member[Int(block)] = true
        previous[Int(block)] = tail
        next[Int(block)] = Self.none
        if tail == Self.none { head = block } else { next[Int(tail)] = block }
        tail = block
        count += 1
    }

    mutating func remove(_ block: BlockID) {
        precondition(member[Int(block)], "block \(block) is not evictable")
        let p = previous[Int(block)], n = next[Int(block)]
        if p == Self.none { head = n } else { next[Int(p)] = n }
        if n == Self.none { tail = p } else { previous[Int(n)] = p }
        member[Int(block)] = false
        count -= 1
    }

    /// Every member, first to be evicted first (for tests and metrics, not the hot path).
    var inOrder: [BlockID] {
        var result: [BlockID] = []
        var cursor = head
        while cursor != Self.none {
            result.append(cursor)
            cursor = next[Int(cursor)]
        }
        return result
    }
}
