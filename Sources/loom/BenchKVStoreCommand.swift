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
        discussion: """
            Starts `loom kvstore --standalone` and `loom bench peer-server` as child processes; each run times, alternately, raw writes, \
            puts and gets of every block. --compute also times a fetch per block as a worker makes it (get, then copy into the pool) \
            against computing the block with the model. --netns NS runs both children in network namespace NS (another host, for tcp).
            """)

    @Option(name: .long, help: "The GGUF model whose KV block layout to use (default: $LOOM_MODEL or the usual path); only its metadata is read.")
    var model: String?

    @Option(name: .long, help: "Blocks moved per run.")
    var blocks = 256

    @Option(name: .long, help: "Blocks per put or get call.")
    var batch = 32

    @Option(name: .long, help: "Timed runs (median reported), after one untimed.")
    var runs = 5

    @Option(name: .long, help: "shm (same host) or tcp: how raw writes and gets travel. Puts take what the store offers: shm on the same host, so measure tcp puts with --netns.")
    var backend: Backend = .shm

    @Flag(name: .long, help: "Also time fetching a block against computing it with the model.")
    var compute = false

    @Option(name: .long, help: "Compute threads for --compute (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Run the store and the peer server in this network namespace (`ip netns`), as another host.")
    var netns: String?

    @Option(name: .long, help: "The address this side listens on (with --netns: its veth address).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "The address the store and the peer server listen on (with --netns: theirs).")
    var peerHost = "127.0.0.1"

    @Flag(name: .long, help: "Print one JSON line instead of a table.")
    var json = false

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case shm, tcp
    }

    func validate() throws {
        guard (1...100_000).contains(blocks) else { throw ValidationError("--blocks must be between 1 and 100000, got \(blocks)") }
        guard (1...blocks).contains(batch) else { throw ValidationError("--batch must be between 1 and --blocks (\(blocks)), got \(batch)") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if netns != nil && backend == .shm {
            throw ValidationError("--netns puts the store on another host, where shm cannot reach; use --backend tcp")
        }
    }

    func run() async throws {
        let path: String
        do { path = try ModelLocator.resolve(model) } catch let error as GGUFError { throw ValidationError(error.message) }
        let layout = StoredLayout(try ModelConfig(gguf: GGUFFile(path: path)))
        let bytes = blocks * layout.payloadBytes
        // Room for one run's blocks and a little more: each run puts new
        // ones, evicting the last run's, as a full store does in steady state.
        let dramMiB = bytes / (1 << 20) + 2
        let store = ["kvstore", "--standalone", "--name", "bench-store", "--host", peerHost, "--port", "0", "--model", path, "--dram-mib", "\(dramMiB)"]
        let wrapper = netns.map { ["ip", "netns", "exec", $0] } ?? []
        let progress: (String) -> Void = { stderr("loom bench: \($0)") }
        let peerArguments = ["--host", peerHost, "--region-bytes", "\(bytes)"] + (backend == .shm ? ["--shm"] : [])
        var result = try await PeerServerChild.with(peerArguments, wrapper: wrapper, progress: progress) { peer in
            try await PeerServerChild.with(command: store, listening: Self.storeAddress, wrapper: wrapper, progress: progress) { storeAddress in
                let description = try await PeerDescription.fetch(from: peer)
                let bench = try await StoreBench(layout: layout, blocks: blocks, batch: batch, backend: backend == .shm ? .shm : .tcp,
                                                 hasher: BlockHasher(modelName: ServedModel.defaultName(path: path)), host: host)
                defer { bench.close() }
                let raw = backend == .shm ? try require(description.shared?.region) : description.region
                var result = try await bench.run(runs: runs, store: storeAddress, peer: peer, peerRegion: raw, progress: progress)
                if compute { result.fetchSeconds = try await bench.fetchSeconds(runs: runs, store: storeAddress) }
                return result
            }
        }
        if compute {
            progress("timing the model's prefill for the cost of computing a block")
            result.computeSeconds = try await PrefillCost.perBlock(path: path, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
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
