import Foundation
import Hummingbird
import LoomEngine

/// What every body or chunk of one response shares, and how to build them.
struct ResponseMeta: Sendable {
    var id: String
    var created: Int
    var model: String
    var endpoint: Endpoint
    var plan: GenerationPlan

    /// One SSE event, framed as OpenAI frames it.
    func event(_ json: Data) -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }

    func chatChunk(_ index: Int, role: String?, content: String?) -> Data {
        let choice = ChatChoice(index: index, delta: ChatMessageOut(role: role, content: content), logprobs: plan.logprobs ? ChatLogprobs([]) : nil)
        return encode(body([choice], object: endpoint.chunkObject, usage: nil, streaming: true))
    }

    /// A delta chunk (`finish == nil`) or the closing chunk of one choice.
    func chunk(_ index: Int, text: String?, logprobs: [TokenLogprob], offset: inout Int, finish: String?) -> Data {
        switch endpoint {
        case .chat:
            let choice = ChatChoice(
                index: index, delta: ChatMessageOut(content: text),
                logprobs: plan.logprobs && finish == nil ? ChatLogprobs(logprobs) : nil, finish_reason: finish)
            return encode(body([choice], object: endpoint.chunkObject, usage: nil, streaming: true))
        case .completion:
            var lp: CompletionLogprobs?
            if plan.logprobs && finish == nil {
                lp = CompletionLogprobs()
                lp?.append(logprobs, offset: &offset)
            }
            let choice = TextChoice(text: text ?? "", index: index, logprobs: lp, finish_reason: finish)
            return encode(body([choice], object: endpoint.chunkObject, usage: nil, streaming: true))
        }
    }

    func usageChunk(_ usages: [RequestUsage]) -> Data {
        let usage = Usage(usages, promptTokens: plan.prompt.count)
        switch endpoint {
        case .chat: return encode(body([ChatChoice](), object: endpoint.chunkObject, usage: usage, streaming: true))
        case .completion: return encode(body([TextChoice](), object: endpoint.chunkObject, usage: usage, streaming: true))
        }
    }

    func completeBody(_ choices: [ChoiceAccumulator]) -> Data {
        let usage = Usage(choices.compactMap(\.usage), promptTokens: plan.prompt.count)
        switch endpoint {
        case .chat:
            let out = choices.enumerated().map { i, c in
                ChatChoice(
                    index: i, message: ChatMessageOut(role: "assistant", content: c.text),
                    logprobs: plan.logprobs ? ChatLogprobs(c.chatLogprobs) : nil, finish_reason: c.finishReason)
            }
            return encode(body(out, object: endpoint.object, usage: usage, streaming: false))
        case .completion:
            let out = choices.enumerated().map { i, c in
                TextChoice(text: c.text, index: i, logprobs: plan.logprobs ? c.completionLogprobs : nil, finish_reason: c.finishReason)
            }
            return encode(body(out, object: endpoint.object, usage: usage, streaming: false))
        }
    }

    private func body<C>(_ choices: [C], object: String, usage: Usage?, streaming: Bool) -> CompletionBody<C> {
        CompletionBody(
            id: id, object: object, created: created, model: model, choices: choices, usage: usage,
            explicitNullUsage: streaming && plan.includeUsage)
    }

    private func encode(_ value: some Encodable) -> Data {
        // Our own value types always encode; a failure is a bug, not input.
        try! JSONEncoder.openAI.encode(value)
    }
}
