/// A cluster config that cannot be used, with where the problem is: the file,
/// a 1-based line and column, and a message a person can act on.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case unreadable, syntax, unknownKey, wrongType, outOfRange, missingKey
        case invalidValue, duplicateKey, duplicateName, duplicatePort, modelNotFound, noDecodeWorker
    }

    public var kind: Kind
    public var file: String
    /// 1-based; 0 when the problem is the whole file (it cannot be read).
    public var line: Int
    /// 1-based, counted in Unicode scalars; 0 with `line`.
    public var column: Int
    public var message: String

    public init(_ kind: Kind, file: String, line: Int, column: Int, _ message: String) {
        self.kind = kind
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:column: message`, the form editors and terminals turn into
    /// a link.
    public var description: String {
        line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)"
    }
}
