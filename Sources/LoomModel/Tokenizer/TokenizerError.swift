/// An error building a tokenizer or encoding text with it. The message names
/// what was asked for and what Loom supports instead, so a person can tell
/// whether the model file or Loom is at fault.
public struct TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// `tokenizer.ggml.pre` names a pre-tokenizer Loom does not implement.
        case unsupportedPreTokenizer
        /// The vocabulary lacks a token the algorithm needs (e.g. a byte-fallback token).
        case missingToken
        /// The vocabulary's tables contradict each other (e.g. a duplicate token).
        case invalidVocabulary
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "tokenizer \(code.rawValue): \(message)" }
}
