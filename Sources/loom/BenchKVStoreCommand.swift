import ArgumentParser
import Foundation
import LoomEngine
import LoomHTTP
import LoomKVStore
import LoomModel
import LoomPeer
import LoomTransfer
import LoomWire

/// A store node's put and get bandwidth against the transfer layer's own,
/// moving the same blocks the same way in the same run.
struct BenchKVStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore",
        abstract: "KV store throughput: blocks of the model's layout put into and got back from a store node, against raw transfer writes of the same bytes.",
        discussion: "Starts `loom kvstore --standalone` and `loom bench peer-server` as child processes; each run times, alternately, raw writes, puts and gets of every block.")

    @Option(name: .long, help: "The GGUF model whose KV block layout to use (default: $LOOM_MODEL or the usual path); only its metadata is read.")
    var model: String?

    @Option(name: .long, help: "Blocks moved per run.")
    var blocks = 256

    @Option(name: .long, help: "Blocks per put or get call.")
    var batch = 32

    @Option(name: .long, help: "Timed runs (median reported), after one untimed.")
    var runs = 5

    @Option(name: .long, help: "shm (same host) or tcp: how the blocks travel, both ways.")
    var backend: Backend = .shm

    @Flag(name: .long, help: "Print one JSON line instead of a table.")
    var json = false

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case shm, tcp
    }

    func validate() throws {
        guard (1...100_000).contains(blocks) else { throw ValidationError("--blocks must be between 1 and 100000, got \(blocks)") }
        guard (1...blocks).contains(batch) else { throw ValidationError("--batch must be between 1 and --blocks (\(blocks)), got \(batch)") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() async throws {
        let path: String
        do { path = try ModelLocator.resolve(model) } catch let error as GGUFError { throw ValidationError(error.message) }
        let layout = StoredLayout(try ModelConfig(gguf: GGUFFile(path: path)))
        let bytes = blocks * layout.payloadBytes
        // Room for one run's blocks and a little more: each run puts new
        // ones, evicting the last run's, as a full store does in steady state.
        let dramMiB = bytes / (1 << 20) + 2
        let store = ["kvstore", "--standalone", "--name", "bench-store", "--port", "0", "--model", path, "--dram-mib", "\(dramMiB)"]
        let progress: (String) -> Void = { stderr("loom bench: \($0)") }
        let peerArguments = ["--region-bytes", "\(bytes)"] + (backend == .shm ? ["--shm"] : [])
        let result = try await PeerServerChild.with(peerArguments, progress: progress) { peer in
            try await PeerServerChild.with(command: store, listening: Self.storeAddress, progress: progress) { storeAddress in
                let description = try await PeerDescription.fetch(from: peer)
                let bench = try await StoreBench(layout: layout, blocks: blocks, batch: batch, backend: backend == .shm ? .shm : .tcp,
                                                 hasher: BlockHasher(modelName: ServedModel.defaultName(path: path)))
                defer { bench.close() }
                let raw = backend == .shm ? try require(description.shared?.region) : description.region
                return try await bench.run(runs: runs, store: storeAddress, peer: peer, peerRegion: raw, progress: progress)
            }
        }
        Swift.print(json ? result.json : result.table)
    }

    private func require(_ region: RegionDescriptor?) throws -> RegionDescriptor {
        guard let region else { throw BenchError("the peer server has no shared-memory region") }
        return region
    }

    /// `loom kvstore: NAME listening on HOST:PORT …`
    @Sendable static func storeAddress(_ line: Substring) throws -> RPCAddress? {
        guard line.hasPrefix("loom kvstore: "), let range = line.range(of: "listening on ") else { return nil }
        let rest = line[range.upperBound...].prefix { $0 != " " }
        guard let address = PeerAddress.parse(String(rest)) else { throw BenchError("cannot read the store node's address from: \(line)") }
        return address
    }
}
