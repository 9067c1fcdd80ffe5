import LoomModel

/// `response_format: {"type": "json_object"}`: only tokens that keep the
/// output a prefix of a JSON object may be sampled, and the stop tokens only
/// once the object is closed, so a finished output always parses.
public struct JSONConstraint: TokenConstraint {
    private var state = JSONPrefix()
    /// Every token's bytes, shared by all requests (copy-on-write, never written).
    private let pieces: [[UInt8]]
    private let stopTokens: Set<TokenID>

    init(pieces: [[UInt8]], stopTokens: Set<TokenID>) {
        self.pieces = pieces
        self.stopTokens = stopTokens
    }

    /// A fresh constraint for one sequence, sharing the table's pieces.
    public init(_ table: JSONTokenTable) {
        self.init(pieces: table.pieces, stopTokens: table.stopTokens)
    }

    public func mask(_ logits: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<min(logits.count, pieces.count) where !allows(TokenID(i)) {
            logits[i] = -.infinity
        }
    }

    public mutating func accept(_ token: TokenID) {
        for byte in pieces[Int(token)] where !state.feed(byte) { break }
    }

    private func allows(_ token: TokenID) -> Bool {
        // A stop token inside an open object would end generation with
        // JSON that does not parse.
        if stopTokens.contains(token) { return state.isComplete }
        if state.isComplete { return false }
        let bytes = pieces[Int(token)]
        guard !bytes.isEmpty else { return false }
        var next = state
        for byte in bytes where !next.feed(byte) { return false }
        return true
    }
}

/// Each token's bytes as JSON mode sees them, computed once per model (a
/// vocabulary-sized table) and shared by every constrained sequence.
public struct JSONTokenTable: Sendable {
    /// Control and unused tokens are empty, which JSON mode never allows.
    let pieces: [[UInt8]]
    let stopTokens: Set<TokenID>

    public init(tokenizer: any Tokenizer) {
        let v = tokenizer.vocabulary
        pieces = (0..<v.count).map { i in
            let type = i < v.types.count ? v.types[i] : .normal
            return [.normal, .byte, .userDefined, .undefined].contains(type) ? tokenizer.piece(TokenID(i)) : []
        }
        stopTokens = v.endOfGenerationIDs
    }
}
