import Foundation
import Testing
import LoomEngine
import LoomModel
import LoomTesting

/// Runs the real `loom` executable, built beside these tests.
struct LoomProcess {
    static var executable: URL { BuiltExecutable.url("loom") }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Output {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite(.serialized) struct CommandLineTests {
    struct GenerateJSON: Decodable {
        var tokens: [TokenID]
        var text: String
    }

    @Test func generateJSONMatchesTheLibrary() throws {
        let path = try TestModel.path()
        let output = try LoomProcess.run(["generate", "--model", path, "--prompt", "The capital of France is", "--max-tokens", "12", "--json", "--threads", "2"])
        #expect(output.status == 0, "\(output.stderr)")
        let parsed = try JSONDecoder().decode(GenerateJSON.self, from: Data(output.stdout.utf8))
        let model = try LanguageModel(path: path, threads: 2)
        let prompt = try model.tokenizer.encode("The capital of France is", as: .rawPrompt())
        let expected = try Generator(model: model.transformer).generate(
            prompt: prompt, maxTokens: 12, stopTokens: model.vocabulary.endOfGenerationIDs)
        #expect(parsed.tokens == expected.tokens)
        #expect(parsed.text == model.tokenizer.decode(expected.tokens))
        #expect(parsed.text.hasPrefix(" Paris"))
    }

    @Test func chatStreamsAnAnswer() throws {
        let output = try LoomProcess.run(
            ["generate", "--chat", "--prompt", "What is the capital of France? Answer in one sentence.", "--max-tokens", "40"],
            environment: ["LOOM_MODEL": try TestModel.path()])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("Paris"))
        #expect(!output.stdout.contains("<|im_end|>"))
    }

    @Test func tokenizePrintsLlamaCppIds() throws {
        let output = try LoomProcess.run(["tokenize", "--model", try TestModel.path(), "<|im_start|>user\nHi<|im_end|>\n"])
        #expect(output.status == 0, "\(output.stderr)")
        let ids = try JSONDecoder().decode([TokenID].self, from: Data(output.stdout.utf8))
        #expect(ids.first == 1 && ids.contains(2))
    }

    /// `generate` feeds the model exactly the ids `tokenize --add-special`
    /// prints for the same raw text, with control tokens parsed or not.
    @Test(arguments: [[], ["--no-parse-special"]])
    func generateTokenizesARawPromptAsTokenizeDoes(flags: [String]) throws {
        let path = try TestModel.path()
        let prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        let tokenized = try LoomProcess.run(["tokenize", "--model", path, "--add-special"] + flags + [prompt])
        #expect(tokenized.status == 0, "\(tokenized.stderr)")
        let ids = try JSONDecoder().decode([TokenID].self, from: Data(tokenized.stdout.utf8))
        #expect(ids.contains(1) == flags.isEmpty, "<|im_start|> is id 1: \(ids)")

        let generated = try LoomProcess.run(
            ["generate", "--model", path, "--prompt", prompt, "--max-tokens", "8", "--json", "--threads", "2"] + flags)
        #expect(generated.status == 0, "\(generated.stderr)")
        let tokens = try JSONDecoder().decode(GenerateJSON.self, from: Data(generated.stdout.utf8)).tokens
        let model = try LanguageModel(path: path, threads: 2)
        let other = try model.tokenizer.encode(prompt, as: .rawPrompt(parseSpecial: !flags.isEmpty))
        let greedy = { (prompt: [TokenID]) in
            try Generator(model: model.transformer).generate(prompt: prompt, maxTokens: 8, stopTokens: model.vocabulary.endOfGenerationIDs).tokens
        }
        let expected = try greedy(ids)
        // Only a prompt whose two tokenizations continue differently can
        // tell which one generate used.
        #expect(try expected != greedy(other))
        #expect(tokens == expected)
    }

    @Test func generateRefusesNoParseSpecialWithChat() throws {
        let output = try LoomProcess.run(["generate", "--chat", "--no-parse-special", "--prompt", "hi"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("--no-parse-special"))
    }

    @Test func missingModelSaysHowToGetOne() throws {
        let output = try LoomProcess.run(
            ["generate", "--prompt", "hi"], environment: ["LOOM_MODEL": "/nonexistent/model.gguf"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("/nonexistent/model.gguf"))
        #expect(output.stderr.contains("fetch-model.sh"))
    }

    @Test func truncatedModelIsAClearError() throws {
        let source = try FileHandle(forReadingFrom: URL(fileURLWithPath: try TestModel.path()))
        let head = source.readData(ofLength: 4_000_000)
        try source.close()
        let path = temporaryPath("truncated.gguf")
        try head.write(to: URL(fileURLWithPath: path))
        let output = try LoomProcess.run(["generate", "--model", path, "--prompt", "hi"])
        #expect(output.status != 0)
        #expect(output.stderr.contains(path))
        #expect(output.stderr.contains("truncated") || output.stderr.contains("needs bytes"))
    }

    @Test func promptOverTheContextIsAClearError() throws {
        let output = try LoomProcess.run([
            "generate", "--model", try TestModel.path(), "--prompt", "Hello", "--max-tokens", "9000",
        ])
        #expect(output.status != 0)
        #expect(output.stderr.contains("context is 8192 tokens"))
    }
}
