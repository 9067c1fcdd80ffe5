/// Every failure LoomWire reports: a stable code (sent in ERROR frames) and a
/// message a person can act on.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        // Framing: the connection that sent these is closed.
        public static let badMagic = Code(rawValue: 1)
        public static let unsupportedVersion = Code(rawValue: 2)
        public static let unknownKind = Code(rawValue: 3)
        public static let frameTooLarge = Code(rawValue: 4)
        public static let truncatedFrame = Code(rawValue: 5)
        public static let protocolViolation = Code(rawValue: 6)
        public static let handshakeFailed = Code(rawValue: 7)
        public static let keepaliveTimeout = Code(rawValue: 8)
        // Calls: only that call fails.
        public static let unknownMethod = Code(rawValue: 20)
        public static let deadlineExceeded = Code(rawValue: 21)
        public static let cancelled = Code(rawValue: 22)
        public static let badMessage = Code(rawValue: 23)
        public static let handlerFailed = Code(rawValue: 24)
        public static let connectionClosed = Code(rawValue: 25)
        public static let unavailable = Code(rawValue: 26)

        public var description: String {
            switch self {
            case .badMagic: "badMagic"
            case .unsupportedVersion: "unsupportedVersion"
            case .unknownKind: "unknownKind"
            case .frameTooLarge: "frameTooLarge"
            case .truncatedFrame: "truncatedFrame"
            case .protocolViolation: "protocolViolation"
            case .handshakeFailed: "handshakeFailed"
            case .keepaliveTimeout: "keepaliveTimeout"
            case .unknownMethod: "unknownMethod"
            case .deadlineExceeded: "deadlineExceeded"
            case .cancelled: "cancelled"
            case .badMessage: "badMessage"
            case .handlerFailed: "handlerFailed"
            case .connectionClosed: "connectionClosed"
            case .unavailable: "unavailable"
            default: "code(\(rawValue))"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
