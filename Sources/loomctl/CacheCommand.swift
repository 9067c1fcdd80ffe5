import ArgumentParser
import Foundation
import LoomRouter

extension Loomctl {
    struct Cache: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The KV cache's tiers (worker pools, store DRAM, store disk): what each holds, its hits, and pinned prefixes.",
            subcommands: [Show.self, Clear.self, Pin.self], defaultSubcommand: Show.self)
        @ParentCommand var parent: Loomctl
    }
}

extension Loomctl.Cache {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Per tier: blocks, bytes, hits and hit rate, evictions; store nodes; pins.")

        @ParentCommand var cache: Loomctl.Cache
        @OptionGroup var cluster: ClusterOptions

        @Flag(name: .long, help: "Print the router's JSON instead of a table.")
        var json = false

        func run() async throws {
            let data = try await cluster.client(parent: cache.parent.cluster).get("/admin/cache")
            if json {
                FileHandle.standardOutput.write(data)
                print()
                return
            }
            print(CacheTable(try RouterClient.decoder.decode(CacheReport.self, from: data)).text)
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear", abstract: "Drop the cached blocks no request is using from every worker's pool; the store keeps its blocks.")

        @ParentCommand var cache: Loomctl.Cache
        @OptionGroup var cluster: ClusterOptions

        @Flag(name: .long, help: "Clear the worker pools (the only tier this clears, so it must be said).")
        var workers = false

        func validate() throws {
            guard workers else { throw ValidationError("say what to clear: --workers drops the worker pools' cached blocks (the store keeps its own)") }
        }

        func run() async throws {
            let data = try await cluster.client(parent: cache.parent.cluster).post("/admin/cache/clear", [:])
            let dropped = try JSONDecoder().decode([String: [String: Int]].self, from: data)["dropped"] ?? [:]
            for (worker, count) in dropped.sorted(by: { $0.key < $1.key }) { print("\(worker): dropped \(count) cached blocks") }
            if dropped.isEmpty { print("no worker answered; is any registered (loomctl status)?") }
        }
    }

    struct Pin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pin", abstract: "Keep a prefix (a system prompt, a shared document) in the store until a deadline; reads do not extend it.")

        @ParentCommand var cache: Loomctl.Cache
        @OptionGroup var cluster: ClusterOptions

        @Option(name: .long, help: "The file whose text to pin.")
        var file: String

        @Option(name: .long, help: "How long, as 90s, 30m, 2h or seconds (at most a week).")
        var ttl: String

        @Option(name: .customLong("as"), help: "system (the default: the text as a chat's system message) or prompt (the start of a raw completion prompt).")
        var kind = "system"

        func validate() throws {
            _ = try seconds()
            guard ["system", "prompt"].contains(kind) else { throw ValidationError("--as must be system or prompt, got '\(kind)'") }
        }

        func seconds() throws -> Int {
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            let unit = ttl.last.flatMap { units[$0] }
            guard let number = Int(unit == nil ? ttl : String(ttl.dropLast())), number > 0 else {
                throw ValidationError("--ttl must be a positive duration such as 90s, 30m or 2h, got '\(ttl)'")
            }
            return number * (unit ?? 1)
        }

        func run() async throws {
            let text: String
            do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
                throw ValidationError("cannot read --file \(file): \(error.localizedDescription)")
            }
            let data = try await cluster.client(parent: cache.parent.cluster)
                .post("/admin/cache/pin", ["text": text, "ttl_seconds": try seconds(), "as": kind])
            let outcome = try RouterClient.decoder.decode(PinOutcome.self, from: data)
            print("pinned \(outcome.pinned) of \(outcome.blocks) blocks of \"\(outcome.label)\" for \(outcome.expiresInSeconds) s"
                  + (outcome.computed ? " (a worker computed the prefix first)" : " (the store held it already)"))
        }
    }
}

/// The cache report as aligned columns.
struct CacheTable {
    let report: CacheReport

    init(_ report: CacheReport) { self.report = report }

    var text: String {
        let tiers = Columns.aligned(["TIER", "BLOCKS", "BYTES", "HITS", "HIT RATE", "EVICTIONS"], report.tiers.map { t in
            [t.tier, "\(t.blocks)", Self.bytes(t.bytes), "\(t.hits)", Columns.percent(t.hitRate), "\(t.evictions)"]
        })
        var lines = tiers + [
            "", "lookups: \(report.lookups) blocks, \(report.hits) hits, \(report.misses) misses (computed), hit rate \(Columns.percent(report.hitRate))",
        ]
        if !report.stores.isEmpty {
            lines += [""] + Columns.aligned(["STORE", "ADDRESS", "PID", "HEALTH", "DRAM", "DISK", "PINNED", "DISK DIR"], report.stores.map { s in
                [s.name, s.address, "\(s.pid)", s.healthy ? "ok" : "dead", "\(s.dramBlocks)/\(s.dramSlots)", "\(s.diskBlocks)", "\(s.pinnedBlocks)",
                 s.diskDir.isEmpty ? "-" : s.diskDir]
            })
            for store in report.stores where !store.diskProblem.isEmpty { lines.append("\(store.name): \(store.diskProblem)") }
            for store in report.stores where store.diskCorrupt > 0 { lines.append("\(store.name): \(store.diskCorrupt) corrupt blocks found on disk and dropped") }
        }
        lines += [""] + (report.pins.isEmpty ? ["pins: none"] : report.pins.map { "pin \"\($0.label)\": \($0.pinned)/\($0.blocks) blocks, \($0.expiresInSeconds) s left" })
        return lines.joined(separator: "\n")
    }

    static func bytes(_ count: Int) -> String {
        count >= 1 << 30 ? String(format: "%.1f GiB", Double(count) / Double(1 << 30))
            : count >= 1 << 20 ? String(format: "%.1f MiB", Double(count) / Double(1 << 20)) : "\(count) B"
    }
}
