import ArgumentParser
import Foundation
import Hummingbird
import LoomEngine
import LoomHTTP
import LoomModel

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the OpenAI-compatible HTTP API for one model, in this process.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port = 8000

    @Option(name: .long, help: "Sequences that may run in one batch.")
    var maxRunning = 16

    @Option(name: .long, help: "Requests that may wait for a slot; more get 429.")
    var maxWaiting = 256

    @Option(name: .long, help: "KV-cache blocks of 16 tokens in the pool.")
    var kvBlocks = 1024

    @OptionGroup var keys: APIKeyOptions

    @Option(name: .long, help: "The model id clients send (default: the file name without .gguf).")
    var modelName: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard (1...64).contains(maxRunning) else { throw ValidationError("--max-running must be between 1 and 64 (the model's logit rows per step)") }
        guard maxWaiting >= 1 else { throw ValidationError("--max-waiting must be at least 1") }
        guard kvBlocks >= 1 else { throw ValidationError("--kv-blocks must be at least 1") }
    }

    func run() async throws {
        let (served, engine) = try loadModel()
        let server = OpenAIServer(model: served, configuration: .init(apiKeys: keys.apiKeys))
        let app = Application(
            router: server.router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "loom"),
            onServerRunning: { channel in
                // Tests and scripts read this line to learn the port when --port is 0.
                let line = "loom serve: listening on http://\(host):\(channel.localAddress?.port ?? port) model=\(served.name)\n"
                FileHandle.standardOutput.write(Data(line.utf8))
            })
        // runService drains in-flight requests on SIGINT/SIGTERM before returning.
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        engine.shutdown()
    }

    private func loadModel() throws -> (ServedModel, InferenceEngine) {
        let tokenBudget = 256
        let model = try LanguageModel(path: try options.modelPath(), threads: options.threads, maxBatchTokens: tokenBudget)
        let engine = try InferenceEngine(model: model.transformer, configuration: SchedulerConfiguration(
            blockCount: kvBlocks, tokenBudget: tokenBudget, maxRunning: maxRunning, maxWaiting: maxWaiting,
            contextLength: model.transformer.config.contextLength))
        return (ServedModel(model: model, engine: engine, name: modelName), engine)
    }
}
