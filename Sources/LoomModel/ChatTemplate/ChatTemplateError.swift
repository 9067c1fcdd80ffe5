/// A position in a template's source, 1-based, so errors can point at the
/// construct a template author has to look at.
public struct TemplateLocation: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// An error parsing or rendering a chat template. `raised` carries the
/// template's own `raise_exception` message verbatim, because templates use it
/// to tell the caller what was wrong with the conversation; every other code's
/// message names the construct and its line:column.
public struct ChatTemplateError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// The template is not valid Jinja.
        case syntax
        /// Valid Jinja that this interpreter deliberately does not implement.
        case unsupported
        /// An operation on an undefined value that jinja2 also refuses.
        case undefined
        /// An operation on values of the wrong type (Python's TypeError).
        case type
        /// A right type but an unusable value (division by zero, bad int, overflow).
        case value
        /// The template called `raise_exception(message)`.
        case raised
    }

    public var code: Code
    public var message: String
    /// Where in the template the error arose, when known.
    public var location: TemplateLocation?

    public init(_ code: Code, _ message: String, at location: TemplateLocation? = nil) {
        self.code = code
        self.location = location
        if let location, code != .raised {
            self.message = "\(message) at \(location)"
        } else {
            self.message = message
        }
    }

    public var description: String { "chat template \(code.rawValue) error: \(message)" }
}
