import Foundation
import Hummingbird
import LoomEngine

enum Endpoint: Sendable {
    case chat, completion

    var idPrefix: String { self == .chat ? "chatcmpl-" : "cmpl-" }
    var object: String { self == .chat ? "chat.completion" : "text_completion" }
    var chunkObject: String { self == .chat ? "chat.completion.chunk" : "text_completion" }
}

/// One choice's text and logprobs as they accumulate.
struct ChoiceAccumulator {
    var text = ""
    var chatLogprobs: [TokenLogprob] = []
    var completionLogprobs = CompletionLogprobs()
    var offset = 0
    var finishReason: String?
    var usage: RequestUsage?

    mutating func add(_ text: String, _ logprobs: [TokenLogprob]) {
        self.text += text
        chatLogprobs += logprobs
        completionLogprobs.append(logprobs, offset: &offset)
    }
}

extension OpenAIServer {
    func run(_ plan: GenerationPlan, as endpoint: Endpoint, arrival: ContinuousClock.Instant) async throws -> Response {
        let readers = (0..<plan.n).map { i in
            var request = plan.request(choice: i, stopTokens: model.stopTokens)
            if plan.jsonMode { request.constraint = JSONConstraint(model.jsonTokens) }
            return ChoiceReader(
                index: i, stream: model.backend.generate(request),
                tokenizer: model.tokenizer, stops: plan.stops, wantsLogprobs: plan.logprobs, promptTokens: plan.prompt.count,
                timer: ChoiceTimer(metrics: metrics, start: arrival))
        }
        metrics.requestsInFlight.increment()
        // A streaming response hands the decrement to its body writer,
        // which runs after this function has returned.
        var handedOff = false
        defer { if !handedOff { metrics.requestsInFlight.decrement() } }
        // Primed together: a choice queued behind its siblings must not hide
        // another's refusal. On a refusal the group cancels the rest.
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for reader in readers { group.addTask { try await reader.prime() } }
                try await group.waitForAll()
            }
        } catch let error as SchedulerError {
            throw APIError(error)
        }
        metrics.promptTokens.increment(by: Int64(plan.prompt.count))
        let meta = ResponseMeta(
            id: endpoint.idPrefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
            created: Int(Date().timeIntervalSince1970), model: model.name, endpoint: endpoint, plan: plan)
        if plan.stream {
            handedOff = true
            let inFlight = metrics.requestsInFlight
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: ResponseBody { writer in
                    defer { inFlight.decrement() }
                    try await Self.stream(readers, meta: meta, to: &writer)
                })
        }
        var choices = [ChoiceAccumulator](repeating: .init(), count: plan.n)
        try await forEachEvent(of: readers) { index, event in
            switch event {
            case .delta(let text, let logprobs):
                choices[index].add(text, logprobs)
            case .finished(let text, let logprobs, let reason, let usage):
                choices[index].add(text, logprobs)
                choices[index].finishReason = reason.rawValue
                choices[index].usage = usage
            }
        }
        return jsonResponse(meta.completeBody(choices))
    }

    private static func stream(_ readers: [ChoiceReader], meta: ResponseMeta, to writer: inout any ResponseBodyWriter) async throws {
        var usages: [RequestUsage] = []
        var offsets = [Int](repeating: 0, count: readers.count)
        if meta.endpoint == .chat {
            for reader in readers { try await writer.write(meta.event(meta.chatChunk(reader.index, role: "assistant", content: ""))) }
        }
        do {
            try await forEachEvent(of: readers) { index, event in
                switch event {
                case .delta(let text, let logprobs):
                    try await writer.write(meta.event(meta.chunk(index, text: text, logprobs: logprobs, offset: &offsets[index], finish: nil)))
                case .finished(let text, let logprobs, let reason, let usage):
                    usages.append(usage)
                    if !text.isEmpty || !logprobs.isEmpty {
                        try await writer.write(meta.event(meta.chunk(index, text: text, logprobs: logprobs, offset: &offsets[index], finish: nil)))
                    }
                    try await writer.write(meta.event(meta.chunk(index, text: nil, logprobs: [], offset: &offsets[index], finish: reason.rawValue)))
                }
            }
        } catch let error as SchedulerError {
            try await writer.write(meta.event(APIError(error).body()))
        }
        if meta.plan.includeUsage {
            try await writer.write(meta.event(meta.usageChunk(usages)))
        }
        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
        try await writer.finish(nil)
    }
}

/// Runs every reader to its end concurrently, handing events to `body` in
/// arrival order. Each reader is owned by exactly one child task.
func forEachEvent(of readers: [ChoiceReader], _ body: (Int, ChoiceEvent) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        let (events, continuation) = AsyncThrowingStream<(Int, ChoiceEvent), Error>.makeStream()
        for reader in readers {
            group.addTask {
                do {
                    while let event = try await reader.next() { continuation.yield((reader.index, event)) }
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
        var running = readers.count
        for try await (index, event) in events {
            try await body(index, event)
            if case .finished = event {
                running -= 1
                if running == 0 { break }
            }
        }
        group.cancelAll()
    }
}
