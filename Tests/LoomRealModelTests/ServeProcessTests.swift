import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomEngine
import LoomModel
import LoomTesting
import Testing

/// A real `loom serve` child process on a free loopback port. It is
/// interrupted (SIGINT) when the test is done, and must exit cleanly.
struct ServeDidNotStart: Error, CustomStringConvertible {
    var code = "serveDidNotStart"
    var message: String
    var description: String { "\(code): \(message)" }
}

final class ServeProcess {
    let process = Process()
    let baseURL: URL
    private let stdout = Pipe()

    init(_ extra: [String] = []) throws {
        process.executableURL = LoomProcess.executable
        process.arguments = ["serve", "--model", try TestModel.path(), "--port", "0", "--threads", "2", "--max-running", "4"] + extra
        process.standardOutput = stdout
        try process.run()
        // Port 0 lets the kernel pick a free port; loom prints the one it got.
        let seen = readFirstLine(of: stdout.fileHandleForReading)
        guard let range = seen.range(of: #"http://127\.0\.0\.1:\d+"#, options: .regularExpression) else {
            process.terminate()
            throw ServeDidNotStart(message: "loom serve printed no listening address: \(seen)")
        }
        baseURL = URL(string: String(seen[range]))!
    }

    func post(_ path: String, _ json: String) async throws -> (Int, Data) {
        var request = URLRequest(url: baseURL.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(json.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// Sends SIGINT and waits: graceful shutdown must end with status 0.
    func stop() -> Int32 {
        process.interrupt()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

@Suite(.serialized) struct ServeProcessTests {
    private func object(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func firstChoice(_ data: Data) throws -> [String: Any] {
        try #require((try object(data)["choices"] as? [[String: Any]])?.first)
    }

    @Test func realServerOverASocketMatchesGeneratorAndShutsDownCleanly() async throws {
        let server = try ServeProcess()
        var stopped = false
        defer { if !stopped { _ = server.stop() } }

        let prompt = "The capital of France is"
        let (status, data) = try await server.post("v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 12, "temperature": 0}"#)
        #expect(status == 200, "\(String(decoding: data, as: UTF8.self))")
        let text = try #require(try firstChoice(data)["text"] as? String)
        let model = try LanguageModel(path: try TestModel.path(), threads: 2)
        let ids = try model.tokenizer.encode(prompt, as: .rawPrompt())
        let expected = try Generator(model: model.transformer).generate(prompt: ids, maxTokens: 12, stopTokens: model.vocabulary.endOfGenerationIDs)
        #expect(text == model.tokenizer.decode(expected.tokens))
        #expect(text.hasPrefix(" Paris"))

        let chat = #""messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}], "max_tokens": 40, "temperature": 0"#
        let (_, whole) = try await server.post("v1/chat/completions", "{\(chat)}")
        let answer = try #require((try firstChoice(whole)["message"] as? [String: Any])?["content"] as? String)
        #expect(answer.contains("Paris"))
        let (streamStatus, streamed) = try await server.post("v1/chat/completions", "{\(chat), \"stream\": true}")
        #expect(streamStatus == 200)
        let body = String(decoding: streamed, as: UTF8.self)
        #expect(body.hasSuffix("data: [DONE]\n\n"))
        let pieces = try body.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }.map { event in
            let chunk = try object(Data(event.dropFirst(6).utf8))
            return ((chunk["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String ?? ""
        }
        #expect(pieces.joined() == answer)

        let (badStatus, _) = try await server.post("v1/completions", #"{"prompt": "x", "max_tokens": 9000}"#)
        #expect(badStatus == 400)
        stopped = true
        #expect(server.stop() == 0)
    }

    /// The official OpenAI Python client against the real server. Fails,
    /// never skips, when python3 or the `openai` package is missing:
    /// scripts/install-deps.sh installs it.
    @Test func theOfficialOpenAIPythonClientWorksAgainstIt() throws {
        let server = try ServeProcess()
        defer { _ = server.stop() }
        let script = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/openai_client_check.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let modelName = URL(fileURLWithPath: try TestModel.path()).deletingPathExtension().lastPathComponent
        process.arguments = ["python3", script.path, server.baseURL.absoluteString, modelName]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "the OpenAI client check failed (is `pip install openai` done? scripts/install-deps.sh does it):\n\(text)")
        #expect(text.contains("all checks passed"))
    }
}
