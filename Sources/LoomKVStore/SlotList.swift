/// Doubly linked lists threaded through slot numbers: each slot is on at
/// most one list, and moving one to a list's front, or taking the one at a
/// list's back, costs O(1). The store's recency order lives here.
struct SlotLists: Sendable {
    private static let none = -1
    private var previous: [Int]
    private var next: [Int]
    private var list: [Int]
    private var heads: [Int]
    private var tails: [Int]
    private(set) var counts: [Int]

    init(slots: Int, lists: Int) {
        previous = Array(repeating: Self.none, count: slots)
        next = Array(repeating: Self.none, count: slots)
        list = Array(repeating: Self.none, count: slots)
        heads = Array(repeating: Self.none, count: lists)
        tails = Array(repeating: Self.none, count: lists)
        counts = Array(repeating: 0, count: lists)
    }

    /// Puts `slot` at the front of list `to`, taking it off any other.
    mutating func pushFront(_ slot: Int, to target: Int) {
        remove(slot)
        next[slot] = heads[target]
        if heads[target] != Self.none { previous[heads[target]] = slot }
        heads[target] = slot
        if tails[target] == Self.none { tails[target] = slot }
        list[slot] = target
        counts[target] += 1
    }

    mutating func remove(_ slot: Int) {
        let owner = list[slot]
        guard owner != Self.none else { return }
        if previous[slot] != Self.none { next[previous[slot]] = next[slot] } else { heads[owner] = next[slot] }
        if next[slot] != Self.none { previous[next[slot]] = previous[slot] } else { tails[owner] = previous[slot] }
        previous[slot] = Self.none
        next[slot] = Self.none
        list[slot] = Self.none
        counts[owner] -= 1
    }

    /// The slot at the back (least recent) of list `index`.
    func back(_ index: Int) -> Int? { tails[index] == Self.none ? nil : tails[index] }

    /// The slots of list `index` from its back forward.
    func fromBack(_ index: Int) -> [Int] {
        Array(sequence(first: tails[index]) { [previous] slot in previous[slot] }.prefix { $0 != Self.none })
    }
}
