import Foundation
import Hummingbird
import LoomEngine

/// An error that reaches the client in OpenAI's schema,
/// `{"error": {"message", "type", "param", "code"}}`, with its HTTP status.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    /// OpenAI's error `type`, e.g. `invalid_request_error`.
    public var type: String
    /// A machine-readable code, e.g. `context_length_exceeded`.
    public var code: String
    /// The request field at fault, when there is one.
    public var param: String?
    public var message: String
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    public var retryAfter: Int?

    public init(
        _ status: HTTPResponse.Status, type: String = "invalid_request_error", code: String,
        param: String? = nil, _ message: String, retryAfter: Int? = nil
    ) {
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func invalid(_ param: String?, _ message: String) -> APIError {
        APIError(.badRequest, code: "invalid_value", param: param, message)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body())))
    }

    /// The JSON body; also sent as an SSE event when a stream fails midway.
    func body() -> Data {
        struct Envelope: Encodable {
            struct Detail: Encodable {
                var message: String
                var type: String
                var param: String?
                var code: String
                func encode(to encoder: any Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(message, forKey: .message)
                    try c.encode(type, forKey: .type)
                    try c.encode(param, forKey: .param)  // OpenAI sends an explicit null
                    try c.encode(code, forKey: .code)
                }
                enum CodingKeys: String, CodingKey { case message, type, param, code }
            }
            var error: Detail
        }
        let envelope = Envelope(error: .init(message: message, type: type, param: param, code: code))
        return (try? JSONEncoder.openAI.encode(envelope)) ?? Data()
    }
}

extension APIError {
    /// Maps an engine refusal to the status OpenAI clients act on: they
    /// retry 429 with backoff and surface 400 to the user.
    init(_ error: SchedulerError) {
        switch error.code {
        case .overloaded:
            self.init(.tooManyRequests, type: "server_overloaded", code: "overloaded", error.message, retryAfter: 1)
        case .contextOverflow, .exceedsKVCapacity:
            self.init(.badRequest, code: "context_length_exceeded", error.message)
        case .invalidRequest, .invalidConfiguration:
            self.init(.badRequest, code: "invalid_request", error.message)
        case .unavailable:
            self.init(.serviceUnavailable, type: "server_error", code: "unavailable", error.message, retryAfter: 1)
        }
    }

    /// Names the field a `JSONDecoder` choked on, so the client can fix it.
    init(decoding error: DecodingError) {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            let field = path(context)
            self.init(
                .badRequest, code: "invalid_type", param: field.isEmpty ? nil : field,
                field.isEmpty ? "the body must be a JSON object" : "'\(field)' has the wrong type: expected \(type)")
        case .valueNotFound(let type, let context):
            let field = path(context)
            self.init(.badRequest, code: "invalid_type", param: field, "'\(field)' is null; expected \(type)")
        case .keyNotFound(let key, let context):
            let field = (context.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            self.init(.badRequest, code: "missing_required_parameter", param: field, "'\(field)' is required")
        case .dataCorrupted(let context):
            let field = path(context)
            let detail = (context.underlyingError as NSError?)?.localizedDescription ?? context.debugDescription
            self.init(
                .badRequest, code: "invalid_json", param: field.isEmpty ? nil : field,
                field.isEmpty ? "the body is not valid JSON: \(detail)" : "'\(field)': \(context.debugDescription)")
        @unknown default:
            self.init(.badRequest, code: "invalid_json", "the body could not be decoded: \(error)")
        }
    }
}

extension JSONEncoder {
    /// Compact, with `/` unescaped, as OpenAI's own responses are; keys
    /// sorted, because Linux Foundation otherwise orders them at random per
    /// call and identical chunks should be identical bytes.
    static var openAI: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }
}
