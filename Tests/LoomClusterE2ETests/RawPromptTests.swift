import Foundation
import LoomEngine
import LoomModel
import LoomTesting
import Testing

/// The router tokenizes for its workers, so a raw prompt sent to the
/// cluster must be tokenized by the same rule, `parse_special` included,
/// as by one process.
@Suite(.serialized) struct RawPromptTests {
    @Test func aRawChatMLPromptThroughTheRouterIsTokenizedAsByOneProcess() async throws {
        let reference = try Reference()
        let cluster = ClusterHarness(model: try TestModel.path())
        defer { cluster.stopAll() }
        try cluster.startRouter()
        try cluster.startWorker("decode-0", role: "decode")
        try await cluster.waitUntilHealthy(["decode-0"])

        let prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        for parseSpecial in [true, false] {
            let model = reference.model
            let ids = try model.tokenizer.encode(prompt, as: .rawPrompt(parseSpecial: parseSpecial))
            let expected = try Generator(model: model.transformer).generate(
                prompt: ids, maxTokens: 8, stopTokens: model.vocabulary.endOfGenerationIDs)
            var request: [String: Any] = ["prompt": prompt, "max_tokens": 8, "temperature": 0]
            if !parseSpecial { request["parse_special"] = false }
            let (status, response) = try await cluster.post("v1/completions", request)
            #expect(status == 200, "\(response)\n\(cluster.logs)")
            #expect((response["usage"] as? [String: Any])?["prompt_tokens"] as? Int == ids.count)
            let text = (response["choices"] as? [[String: Any]])?.first?["text"] as? String
            #expect(text == model.tokenizer.decode(expected.tokens), "parse_special \(parseSpecial)")
        }
        let (status, response) = try await cluster.post("v1/completions", ["prompt": prompt, "parse_special": "no"])
        #expect(status == 400)
        #expect((response["error"] as? [String: Any])?["param"] as? String == "parse_special")
    }
}
