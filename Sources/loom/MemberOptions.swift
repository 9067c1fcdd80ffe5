import ArgumentParser
import LoomCluster
import LoomModel
import LoomWire

/// What every cluster member process (`loom worker`, `loom kvstore`) is
/// told the same way: its entry in a config file, or else who it is, where
/// it listens, which model it serves and where its router is.
struct MemberOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Run the member --name of this cluster config (YAML): its entry and the router section set the model, address, router and sizes, and those flags are refused; timings (lease, drain) still come from the flags.",
        valueName: "file"))
    var config: String?

    @Option(name: .long, help: "This process's name in the cluster (unique among workers and store nodes).")
    var name: String

    @Option(name: .long, help: "Path to a GGUF model (default: $LOOM_MODEL or ~/.cache/loom/models/\(ModelLocator.defaultFileName)).")
    var model: String?

    @Option(name: .long, help: "Address peers reach this process on, RPC and KV transfer (default: 127.0.0.1).")
    var host: String?

    @Option(name: .long, help: "RPC port (0, the default, picks a free one).")
    var port: Int?

    @Option(name: .long, help: ArgumentHelp("The router's RPC address.", valueName: "host:port"))
    var router: RPCAddress?

    /// The flags a `--config` run refuses, with `extra` ones of the command.
    func flags(_ extra: [(flag: String, value: Any?)]) -> [(flag: String, value: Any?)] {
        [("--model", model), ("--host", host), ("--port", port), ("--router", router)] + extra
    }

    /// The config at `--config`, or nil without one.
    func cluster(refusing extra: [(flag: String, value: Any?)]) throws -> ClusterConfig? {
        guard let config else { return nil }
        return try ClusterConfig.loadForCommandLine(config, refusing: flags(extra))
    }

    /// `--router`, which a run without `--config` needs.
    func requiredRouter() throws -> RPCAddress {
        guard let router else { throw ValidationError("--router is needed (the router's RPC address, host:port), or --config") }
        return router
    }
}
