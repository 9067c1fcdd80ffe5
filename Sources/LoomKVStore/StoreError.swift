/// Why the store refused a block, a lease or a request. Each says what to
/// do about it; none leaves anything half-stored.
public struct StoreError: Error, Equatable, CustomStringConvertible {
    public enum Code: UInt32, Sendable {
        /// Not a block header, or cut short.
        case malformed = 1
        case wrongModel
        case wrongLayout
        /// The header's hash does not follow from its parent and tokens.
        case wrongName
        /// The payload fails its checksum.
        case corrupt
        /// No slot free and nothing evictable.
        case full
        /// The reservation or lease named is not (or no longer) live.
        case staleLease
        /// A commit before the block's bytes were written.
        case notWritten
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
