/// Where things sit in the region each rank registers for its group. Peers
/// write into it one-sided and then bump their arrival word (the write's
/// immediate); the owner only ever reads it. The layout depends on the
/// group and the model's widths alone, so every rank computes the same one
/// without being told.
///
///     [sleeping][arrived[0]]...[arrived[N-1]]   one cache line each
///     reduce slots: [source][parity] × `reduceFloats` floats
///     plan slot:    `planBytes` (the leader's step, in followers' regions)
///     logits:       `logitRows` × vocabulary floats (the leader's region)
public struct GroupRegionLayout: Sendable, Equatable {
    public static let line = 64
    /// Tokens per all-reduce round: larger steps are summed in rounds.
    public static let reduceTokens = 256
    public static let planBytes = 1 << 20
    /// Logit rows one step may gather (the engine's most per step).
    public static let logitRows = 64

    public let size: Int
    public let embedding: Int
    public let vocabulary: Int
    public let holdsLogits: Bool

    public init(size: Int, embedding: Int, vocabulary: Int, holdsLogits: Bool) {
        self.size = size
        self.embedding = embedding
        self.vocabulary = vocabulary
        self.holdsLogits = holdsLogits
    }

    public var reduceFloats: Int { Self.reduceTokens * embedding }
    public var sleepingOffset: Int { 0 }
    public func arrivedOffset(from source: Int) -> Int { Self.line * (1 + source) }
    var headerBytes: Int { (Self.line * (1 + size) + 4095) / 4096 * 4096 }

    public func reduceSlotOffset(source: Int, parity: Int) -> Int {
        headerBytes + (source * 2 + parity) * reduceFloats * 4
    }

    public var planOffset: Int { reduceSlotOffset(source: size, parity: 0) }
    public var logitsOffset: Int { planOffset + Self.planBytes }
    public var length: Int { logitsOffset + (holdsLogits ? Self.logitRows * vocabulary * 4 : 0) }
}
