/// Where a request's prompt is prefilled once its decode worker is chosen
/// (conditional disaggregation).
public enum DisaggregationDecision: Sendable, Equatable {
    /// The decode worker prefills the prompt itself.
    case local
    /// A prefill worker computes the KV and writes it into the decode
    /// worker's pool.
    case remote

    /// Shipping KV across the network has a fixed cost (a reservation round
    /// trip, the transfer's setup) that a short uncached tail does not repay,
    /// so prompts whose uncached part is under `threshold` tokens stay local.
    /// With no prefill worker alive, or nothing left to prefill, there is no
    /// choice.
    public init(uncachedPromptTokens: Int, threshold: Int, prefillWorkerAvailable: Bool) {
        precondition(uncachedPromptTokens >= 0 && threshold >= 0, "token counts are not negative")
        let worthShipping = uncachedPromptTokens > 0 && uncachedPromptTokens >= threshold
        self = prefillWorkerAvailable && worthShipping ? .remote : .local
    }
}
