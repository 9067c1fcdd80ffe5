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
import ServiceLifecycle

struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Run a Loom cluster's router: the OpenAI-compatible API in front of registered workers.")

    @Option(name: .long, help: ArgumentHelp("Run the router of this cluster config (YAML): its router section sets everything below but the API key.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: "Path to the GGUF model the workers serve (its tokenizer and chat template are used here; default: $LOOM_MODEL).")
    var model: String?

    @Option(name: .long, help: "HTTP address to listen on (default: 127.0.0.1).")
    var host: String?

    @Option(name: .long, help: "HTTP port for the OpenAI API (0 picks a free one; default: 8080).")
    var port: Int?

    @Option(name: .long, help: "RPC port workers register on (0 picks a free one; default: 7600).")
    var rpcPort: Int?

    @Option(name: .long, help: "Decode-worker routing: round-robin, least-loaded or prefix-aware (the default).")
    var policy: RoutingPolicyName?

    @Option(name: .long, help: "Weight of uncached prompt blocks against queued requests in prefix-aware routing (default: 1).")
    var prefixWeight: Double?

    @Option(name: .long, help: "Uncached prompt tokens below which the decode worker prefills itself (default: 32).")
    var disaggregationThreshold: Int?

    @Option(name: .long, help: "Heartbeat interval workers are told to use, in milliseconds (default: 500).")
    var heartbeatIntervalMs: Int?

    @Option(name: .long, help: "Silence after which a worker is declared dead, in milliseconds (default: 3000).")
    var heartbeatTimeoutMs: Int?

    @OptionGroup var keys: APIKeyOptions

    func validate() throws {
        _ = try settings()
    }

    /// The router's settings: from `--config` (validated by its loader),
    /// else from the flags, checked against the same `Limits`.
    func settings() throws -> (router: RouterConfig, model: String?) {
        let flags: [(flag: String, value: Any?)] = [
            ("--model", model), ("--host", host), ("--port", port), ("--rpc-port", rpcPort), ("--policy", policy),
            ("--prefix-weight", prefixWeight), ("--disaggregation-threshold", disaggregationThreshold),
            ("--heartbeat-interval-ms", heartbeatIntervalMs), ("--heartbeat-timeout-ms", heartbeatTimeoutMs),
        ]
        if let config {
            let cluster = try ClusterConfig.loadForCommandLine(config, refusing: flags)
            return (cluster.router, cluster.model)
        }
        var router = RouterConfig(port: port ?? 8080, rpcPort: rpcPort ?? 7600)
        if let host { router.host = host }
        if let policy { router.policy = policy }
        if let prefixWeight { router.prefixWeight = prefixWeight }
        if let disaggregationThreshold { router.disaggregationThreshold = disaggregationThreshold }
        if let heartbeatIntervalMs { router.heartbeatInterval = .milliseconds(heartbeatIntervalMs) }
        if let heartbeatTimeoutMs { router.heartbeatTimeout = .milliseconds(heartbeatTimeoutMs) }
        do {
            try router.validate(allowingAnyPort: true)
        } catch {
            throw ValidationError(error.description)
        }
        return (router, model)
    }

    func run() async throws {
        var logger = Logger(label: "loom.router")
        logger.logLevel = .info
        let (settings, configuredModel) = try settings()
        let path: String
        do { path = try ModelLocator.resolve(configuredModel) } catch let error as GGUFError { throw ValidationError(error.message) }
        let file = try GGUFFile(path: path)
        let tokenizer = try Tokenizers.make(Vocabulary(metadata: file.metadata, path: path))
        let template = try file.metadata["tokenizer.chat_template"]?.string.map { try ChatTemplate(source: $0) }
        let contextLength = try ModelConfig(gguf: file).contextLength
        let name = ServedModel.defaultName(path: path)
        var metrics = ServerMetrics()
        let state = ClusterState(settings: .init(
            decodePolicy: settings.policy, prefixWeight: settings.prefixWeight,
            disaggregationThreshold: settings.disaggregationThreshold, heartbeatInterval: settings.heartbeatInterval,
            heartbeatTimeout: settings.heartbeatTimeout, hasher: BlockHasher(modelName: name), modelName: name),
            metrics: RouterMetrics(registry: metrics.registry))
        var rpc = RPCConfiguration(nodeName: "router", logger: logger)
        rpc.epoch = processEpoch()
        let backend = ClusterBackend(state: state, rpc: rpc, logger: logger)
        let served = ServedModel(path: path, tokenizer: tokenizer, chatTemplate: template, contextLength: contextLength, backend: backend, name: name)
        let node = RouterNode(backend: backend, logger: logger)
        let host = settings.host
        let rpcServer = try await RPCServer.bind(.tcp(host: host, port: settings.rpcPort), services: node.services, configuration: rpc)
        metrics.appendix = { state.cacheMetricsText }
        let http = OpenAIServer.Configuration(apiKeys: keys.apiKeys)
        let router = OpenAIServer(model: served, configuration: http, metrics: metrics).router()
        RouterAdmin(state: state, backend: backend, model: served, http: http).add(to: router)
        let rpcPortBound: Int = if case .tcp(_, let p) = rpcServer.localAddress { p } else { settings.rpcPort }
        let policy = settings.policy
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: settings.port), serverName: "loom-router"),
            onServerRunning: { channel in
                announce("loom router: listening on http://\(host):\(channel.localAddress?.port ?? settings.port) rpc=\(host):\(rpcPortBound) model=\(name) policy=\(policy.rawValue)")
            })
        // A graceful shutdown (SIGTERM, SIGINT) stops the services in reverse:
        // the HTTP API first, after the requests under way have finished
        // (they still need the workers, and the releases their blocks),
        // then the rest.
        let services: [any Service] = [
            ClosureService { try await stoppedGracefully { try await rpcServer.run() } },
            ClosureService { try await stoppedGracefully { await node.watchdog() } },
            ClosureService { try await stoppedGracefully { await backend.run() } },
            app,
        ]
        try await ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        backend.shutdown()
    }
}

extension RoutingPolicyName: ExpressibleByArgument {}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}
