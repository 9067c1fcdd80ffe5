/// How to pick the next token. The defaults are greedy decoding.
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// 0 picks the most likely token (greedy).
    public var temperature: Float = 0
    /// Keep only the k most likely tokens; 0 keeps all.
    public var topK: Int = 0
    /// Keep the smallest set of tokens whose probability reaches p.
    public var topP: Float = 1
    /// Drop tokens less likely than minP × the most likely one's probability.
    public var minP: Float = 0
    /// Divides positive logits (multiplies negative ones) of tokens seen recently; 1 is off.
    public var repetitionPenalty: Float = 1
    /// Subtracted once per earlier occurrence of a token.
    public var frequencyPenalty: Float = 0
    /// Subtracted once from any token that occurred before.
    public var presencePenalty: Float = 0
    /// How many recent tokens the repetition penalty looks at (0: all).
    public var repetitionWindow: Int = 64
    /// A seed makes sampling reproducible; nil draws one.
    public var seed: UInt64?

    public init(
        temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
        repetitionPenalty: Float = 1, frequencyPenalty: Float = 0, presencePenalty: Float = 0,
        repetitionWindow: Int = 64, seed: UInt64? = nil
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    public var isGreedy: Bool { temperature <= 0 }
    var hasPenalties: Bool { repetitionPenalty != 1 || frequencyPenalty != 0 || presencePenalty != 0 }
}
