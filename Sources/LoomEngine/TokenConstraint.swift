import LoomModel

/// Restricts which tokens may come next (constrained decoding, e.g. JSON
/// mode). The engine masks each step's logits with it before sampling and
/// tells it every token that was emitted.
public protocol TokenConstraint: Sendable {
    /// Sets the logits of tokens that may not come next to -infinity. At
    /// least one token must stay allowed, or sampling has nothing to pick.
    func mask(_ logits: UnsafeMutableBufferPointer<Float>)
    /// Advances past a token that was emitted.
    mutating func accept(_ token: TokenID)
}
