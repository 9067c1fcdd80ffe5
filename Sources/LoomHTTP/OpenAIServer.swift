import Foundation
import Hummingbird
import LoomEngine
import LoomModel

/// The OpenAI-compatible HTTP surface over one served model. Build its
/// router and run it in a Hummingbird `Application`.
public struct OpenAIServer: Sendable {
    public struct Configuration: Sendable {
        /// When not empty, `/v1` requests need `Authorization: Bearer <key>`
        /// with one of these, and each key's requests share cached KV only
        /// with requests under the same key.
        public var apiKeys: [String]
        /// Larger bodies get 413 before any parsing.
        public var maxBodyBytes: Int

        public init(apiKeys: [String] = [], maxBodyBytes: Int = 4 << 20) {
            self.apiKeys = apiKeys
            self.maxBodyBytes = maxBodyBytes
        }

        /// One key for everyone (nil: no key).
        public var apiKey: String? {
            get { apiKeys.first }
            set { apiKeys = newValue.map { [$0] } ?? [] }
        }

        /// The configured key `request` bears as `Authorization: Bearer
        /// <key>`; nil when it bears none of them.
        public func key(of request: Request) -> String? {
            guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return nil }
            let key = String(header.dropFirst("Bearer ".count))
            return apiKeys.contains(key) ? key : nil
        }

        /// Whether `request` may in: any request when there are no keys.
        public func admits(_ request: Request) -> Bool {
            apiKeys.isEmpty || key(of: request) != nil
        }

        /// The cache namespace of a request: its key's, when the server
        /// has keys; nil (the shared one) when it has none.
        public func namespace(of request: Request) -> CacheNamespace? {
            key(of: request).map(CacheNamespace.init(apiKey:))
        }
    }

    let model: ServedModel
    let configuration: Configuration
    let metrics: ServerMetrics
    let startedAt = Int(Date().timeIntervalSince1970)

    public init(model: ServedModel, configuration: Configuration = .init(), metrics: ServerMetrics = .init()) {
        self.model = model
        self.configuration = configuration
        self.metrics = metrics
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}"))) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.render(load: model.backend.snapshot))))
        }
        let v1 = router.group("v1").add(middleware: APIKeyMiddleware(configuration: configuration))
        v1.get("models") { _, _ in try json(ModelList(data: [.init(id: model.name, created: startedAt)])) }
        v1.post("chat/completions") { request, _ in try await chatCompletions(request) }
        v1.post("completions") { request, _ in try await completions(request) }
        return router
    }

    func chatCompletions(_ request: Request) async throws -> Response {
        let arrival = ContinuousClock.now
        let body = try await decode(ChatCompletionRequest.self, from: request)
        try checkModel(body.fields.model)
        if body.parse_special == false {
            // Refused rather than ignored: a client that sends it believes
            // its users' messages are kept from forging turns, and they are not.
            throw APIError.invalid("parse_special", "parse_special: false is only for /v1/completions; a chat prompt's turn markers come from the template and are always parsed")
        }
        let messages = body.messages.map { ChatMessage(role: $0.role, content: $0.content?.text ?? "") }
        let text: String
        do {
            text = try model.renderChat(messages)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(.badRequest, code: "invalid_messages", param: "messages", "the chat template could not render these messages: \(error)")
        }
        let prompt = try tokenize { try model.tokenizer.encode(text, as: .renderedChat) }
        let topLogprobs = body.top_logprobs ?? 0
        if topLogprobs > 0, body.logprobs != true {
            throw APIError.invalid("top_logprobs", "top_logprobs needs logprobs: true")
        }
        var plan = try GenerationPlan(
            body.fields, maxTokensAsked: body.maxTokensAsked, prompt: prompt, contextLength: model.contextLength,
            logprobs: body.logprobs ?? false, topLogprobs: topLogprobs)
        plan.cacheNamespace = configuration.namespace(of: request)
        return try await run(plan, as: .chat, arrival: arrival)
    }

    func completions(_ request: Request) async throws -> Response {
        let arrival = ContinuousClock.now
        let body = try await decode(CompletionRequest.self, from: request)
        try checkModel(body.fields.model)
        let prompt: [TokenID]
        switch body.prompt {
        case .text(let text):
            let rule = PromptTokenization.rawPrompt(parseSpecial: body.parse_special ?? true)
            prompt = try tokenize { try model.tokenizer.encode(text, as: rule) }
        case .tokens(let ids):
            let size = model.tokenizer.vocabulary.tokens.count
            if let bad = ids.first(where: { Int($0) >= size }) {
                throw APIError.invalid("prompt", "token id \(bad) is outside the vocabulary of \(size) tokens")
            }
            prompt = ids
        }
        let logprobs = body.logprobs ?? 0
        if !(0...5).contains(logprobs) { throw APIError.invalid("logprobs", "logprobs is \(logprobs); it must be between 0 and 5") }
        var plan = try GenerationPlan(
            body.fields, maxTokensAsked: body.maxTokensAsked, prompt: prompt, contextLength: model.contextLength,
            logprobs: body.logprobs != nil, topLogprobs: logprobs)
        plan.cacheNamespace = configuration.namespace(of: request)
        return try await run(plan, as: .completion, arrival: arrival)
    }

    private func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, code: "request_too_large", "the body is over \(configuration.maxBodyBytes) bytes; send a shorter request")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw APIError(decoding: error)
        }
    }

    private func checkModel(_ name: String?) throws {
        guard let name, name != model.name else { return }
        throw APIError(.notFound, code: "model_not_found", param: "model", "the model '\(name)' does not exist; this server serves '\(model.name)' (see GET /v1/models)")
    }

    private func tokenize(_ body: () throws -> [TokenID]) throws -> [TokenID] {
        do {
            return try body()
        } catch {
            throw APIError(.badRequest, code: "invalid_prompt", param: "prompt", "the prompt could not be tokenized: \(error)")
        }
    }
}

func json(_ value: some Encodable) throws -> Response {
    jsonResponse(try JSONEncoder.openAI.encode(value))
}

func jsonResponse(_ data: Data) -> Response {
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// Refuses `/v1` requests without one of the configured bearer keys.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let configuration: OpenAIServer.Configuration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard configuration.admits(request) else {
            throw APIError(.unauthorized, code: "invalid_api_key", "a valid API key is required: send 'Authorization: Bearer <key>' with the key loom serve was started with")
        }
        return try await next(request, context)
    }
}
