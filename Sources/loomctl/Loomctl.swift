import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomRouter

/// Options every subcommand takes, declared once and accepted before or
/// after the subcommand's name (`loomctl --router URL status` and
/// `loomctl status --router URL`).
struct ClusterOptions: ParsableArguments {
    static let defaultRouter = "http://127.0.0.1:8080"

    @Option(name: .long, help: ArgumentHelp("The router's HTTP URL (else $LOOM_ROUTER, else \(defaultRouter)).", valueName: "url"))
    var router: String?

    @Option(name: .long, help: ArgumentHelp("The router's API key, for commands that change the cluster (else $LOOM_API_KEY).", valueName: "key"))
    var apiKey: String?

    /// The router this invocation talks to: the subcommand's options win
    /// over the root's, either over the environment.
    func client(parent: ClusterOptions) -> RouterClient {
        let environment = ProcessInfo.processInfo.environment
        let url = router ?? parent.router ?? environment["LOOM_ROUTER"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultRouter
        return RouterClient(router: url, apiKey: apiKey ?? parent.apiKey ?? environment["LOOM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 })
    }
}

@main
struct Loomctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loomctl", abstract: "Operate a running Loom cluster through its router.",
        subcommands: [Status.self, Cache.self])

    @OptionGroup var cluster: ClusterOptions

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Workers, their load and KV transfers, and the router's prefix index.")

        @ParentCommand var parent: Loomctl
        @OptionGroup var cluster: ClusterOptions

        @Flag(name: .long, help: "Print the router's JSON instead of a table.")
        var json = false

        func run() async throws {
            let data = try await cluster.client(parent: parent.cluster).get("/admin/status")
            if json {
                FileHandle.standardOutput.write(data)
                print()
                return
            }
            print(StatusTable(try RouterClient.decoder.decode(ClusterStatus.self, from: data)).text)
        }
    }
}

/// The status as aligned columns.
struct StatusTable {
    let status: ClusterStatus

    init(_ status: ClusterStatus) { self.status = status }

    var text: String {
        let header = ["MEMBER", "ROLE", "ADDRESS", "PID", "HEALTH", "RUN", "WAIT", "KV USED", "KV SENT", "KV RECV", "HEARTBEAT"]
        let rows = status.workers.flatMap { w in
            let health = !w.healthy ? "dead" : w.draining ? "draining" : "ok"
            // A tensor-parallel worker is one row, then a row per rank.
            let ranks = w.ranks.map { r in
                ["  rank \(r.rank)", r.link, r.address.isEmpty ? r.host : "\(r.address) (\(r.host))", "\(r.pid)", health, "", "", "", "", "", ""]
            }
            return [[w.id, w.role + (w.ranks.isEmpty ? "" : " tp=\(w.ranks.count)"), w.address, "\(w.pid)", health, "\(w.running)", "\(w.waiting)",
                     "\(w.kvBlocksUsed)/\(w.kvBlocksTotal)", "\(w.kvBlocksSent)", "\(w.kvBlocksReceived)", "\(w.heartbeatAgeMs) ms"]] + ranks
        }
        let lines = Columns.aligned(header, rows)
        let hit = Columns.percent(status.prefixHitRate)
        let decisions = status.decisions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return (lines + [
            "",
            "prefix index: \(status.prefixIndexBlocks) blocks (\(status.prefixIndexEntries) worker entries), hit rate \(hit), policy \(status.policy)",
            "routing: \(decisions.isEmpty ? "no requests yet" : decisions)",
        ]).joined(separator: "\n")
    }
}
