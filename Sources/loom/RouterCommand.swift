import ArgumentParser
import Foundation
import Hummingbird
import LoomCluster
import LoomEngine
import LoomHTTP
import LoomModel
import LoomRouter
import LoomWire
import Logging

struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Run a Loom cluster's router: the OpenAI-compatible API in front of registered workers.")

    @Option(name: .long, help: "Path to the GGUF model the workers serve (its tokenizer and chat template are used here; default: $LOOM_MODEL).")
    var model: String?

    @Option(name: .long, help: "HTTP address to listen on.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "HTTP port for the OpenAI API (0 picks a free one).")
    var port = 8080

    @Option(name: .long, help: "RPC port workers register on (0 picks a free one).")
    var rpcPort = 7600

    @Option(name: .long, help: "Decode-worker routing: round-robin, least-loaded or prefix-aware.")
    var policy = RoutingPolicyName.prefixAware.rawValue

    @Option(name: .long, help: "Weight of uncached prompt blocks against queued requests in prefix-aware routing.")
    var prefixWeight = 1.0

    @Option(name: .long, help: "Uncached prompt tokens below which the decode worker prefills itself.")
    var disaggregationThreshold = 32

    @Option(name: .long, help: "Heartbeat interval workers are told to use, in milliseconds.")
    var heartbeatIntervalMs = 500

    @Option(name: .long, help: "Silence after which a worker is declared dead, in milliseconds.")
    var heartbeatTimeoutMs = 3000

    @Option(name: .long, help: "When set, clients must send 'Authorization: Bearer <key>'.")
    var apiKey: String?

    func validate() throws {
        guard RoutingPolicyName(rawValue: policy) != nil else {
            throw ValidationError("--policy must be one of \(RoutingPolicyName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (0...65535).contains(port), (0...65535).contains(rpcPort) else { throw ValidationError("ports must be between 0 and 65535") }
        guard heartbeatIntervalMs >= 50, heartbeatTimeoutMs > heartbeatIntervalMs else {
            throw ValidationError("--heartbeat-interval-ms must be at least 50 and below --heartbeat-timeout-ms")
        }
        guard disaggregationThreshold >= 0, prefixWeight >= 0 else { throw ValidationError("--disaggregation-threshold and --prefix-weight must not be negative") }
    }

    func run() async throws {
        var logger = Logger(label: "loom.router")
        logger.logLevel = .info
        let path: String
        do { path = try ModelLocator.resolve(model) } catch let error as GGUFError { throw ValidationError(error.message) }
        let file = try GGUFFile(path: path)
        let tokenizer = try Tokenizers.make(Vocabulary(metadata: file.metadata, path: path))
        let template = try file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
        let contextLength = try ModelConfig(gguf: file).contextLength
        let name = ServedModel.defaultName(path: path)
        let metrics = ServerMetrics()
        let state = ClusterState(settings: .init(
            decodePolicy: RoutingPolicyName(rawValue: policy)!, prefixWeight: prefixWeight,
            disaggregationThreshold: disaggregationThreshold, heartbeatInterval: .milliseconds(heartbeatIntervalMs),
            heartbeatTimeout: .milliseconds(heartbeatTimeoutMs), hasher: BlockHasher(modelName: name), modelName: name),
            metrics: RouterMetrics(registry: metrics.registry))
        var rpc = RPCConfiguration(nodeName: "router", logger: logger)
        rpc.epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let backend = ClusterBackend(state: state, rpc: rpc, logger: logger)
        let served = ServedModel(path: path, tokenizer: tokenizer, chatTemplate: template, contextLength: contextLength, backend: backend, name: name)
        let node = RouterNode(backend: backend, logger: logger)
        let rpcServer = try await RPCServer.bind(.tcp(host: host, port: rpcPort), services: node.services, configuration: rpc)
        let router = OpenAIServer(model: served, configuration: .init(apiKey: apiKey), metrics: metrics).router()
        router.get("/admin/status") { _, _ in
            let body = try JSONEncoder.sorted.encode(state.status)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let rpcPortBound: Int = if case .tcp(_, let p) = rpcServer.localAddress { p } else { rpcPort }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "loom-router"),
            onServerRunning: { channel in
                announce("loom router: listening on http://\(host):\(channel.localAddress?.port ?? port) rpc=\(host):\(rpcPortBound) model=\(name) policy=\(policy)")
            })
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await rpcServer.run() }
            group.addTask { await node.watchdog() }
            // runService returns after draining on SIGINT/SIGTERM; then the
            // RPC side stops too.
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
            group.cancelAll()
        }
        backend.shutdown()
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}
