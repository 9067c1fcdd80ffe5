/// An error reading a GGUF file. The message names the file and, where it
/// applies, the tensor or byte offset and what was expected there.
public struct GGUFError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case unreadable
        case badMagic
        case unsupportedVersion
        case truncated
        case invalidValue
        case unknownTensorType
        case tensorOutOfBounds
        case missingTensor
        case missingMetadata
        case shapeMismatch
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "GGUF \(code.rawValue): \(message)" }
}
