import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomRouter

@main
struct Loomctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loomctl", abstract: "Operate a running Loom cluster through its router.",
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Workers, their load and KV transfers, and the router's prefix index.")

        @Option(name: .long, help: "The router's HTTP URL.")
        var router = "http://127.0.0.1:8080"

        @Flag(name: .long, help: "Print the router's JSON instead of a table.")
        var json = false

        func run() async throws {
            let data = try await fetch(URL(string: "\(router)/admin/status"))
            if json {
                FileHandle.standardOutput.write(data)
                print()
                return
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            print(StatusTable(try decoder.decode(ClusterStatus.self, from: data)).text)
        }

        private func fetch(_ url: URL?) async throws -> Data {
            guard let url else { throw ValidationError("--router must be a URL like http://127.0.0.1:8080") }
            do {
                let (data, response) = try await URLSession.shared.data(from: url)
                guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
                    throw ValidationError("\(url) answered \((response as? HTTPURLResponse)?.statusCode ?? 0); is \(router) a Loom router?")
                }
                return data
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("cannot reach the router at \(router): \(error.localizedDescription); is it running (loom up)?")
            }
        }
    }
}

/// The status as aligned columns.
struct StatusTable {
    let status: ClusterStatus

    init(_ status: ClusterStatus) { self.status = status }

    var text: String {
        let header = ["WORKER", "ROLE", "ADDRESS", "PID", "HEALTH", "RUN", "WAIT", "KV USED", "KV SENT", "KV RECV", "HEARTBEAT"]
        let rows = status.workers.map { w in
            [w.id, w.role, w.address, "\(w.pid)", w.healthy ? "ok" : "dead", "\(w.running)", "\(w.waiting)",
             "\(w.kvBlocksUsed)/\(w.kvBlocksTotal)", "\(w.kvBlocksSent)", "\(w.kvBlocksReceived)", "\(w.heartbeatAgeMs) ms"]
        }
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }
        let lines = ([header] + rows).map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        let hit = String(format: "%.1f%%", status.prefixHitRate * 100)
        let decisions = status.decisions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return (lines + [
            "",
            "prefix index: \(status.prefixIndexBlocks) blocks (\(status.prefixIndexEntries) worker entries), hit rate \(hit), policy \(status.policy)",
            "routing: \(decisions.isEmpty ? "no requests yet" : decisions)",
        ]).joined(separator: "\n")
    }
}
