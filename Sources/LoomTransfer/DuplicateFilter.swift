/// The ids seen lately, for telling a duplicated delivery (a retry whose
/// first attempt landed, a write delivered twice) from a new one: the last
/// `window` ids, in a ring, so memory stays bounded however long a peer
/// writes. An id repeats only long after it left the window (op ids never
/// do; a fabric writer's 16-bit sequence after 65536 writes).
public struct DuplicateFilter<ID: Hashable>: Sendable where ID: Sendable {
    public static var defaultWindow: Int { 4096 }

    let window: Int
    private var members: Set<ID> = []
    /// The window's ids, oldest at `head` once full.
    private var order: [ID] = []
    private var head = 0

    public init(window: Int = Self.defaultWindow) {
        precondition(window > 0, "a duplicate filter remembers at least one id")
        self.window = window
    }

    public func contains(_ id: ID) -> Bool { members.contains(id) }

    /// Records `id`; false when it was already in the window (a duplicate).
    @discardableResult
    public mutating func insert(_ id: ID) -> Bool {
        guard members.insert(id).inserted else { return false }
        if order.count < window {
            order.append(id)
        } else {
            members.remove(order[head])
            order[head] = id
            head = (head + 1) % window
        }
        return true
    }
}
