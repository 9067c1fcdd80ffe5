import LoomTransfer
import LoomWire
import NIOCore

/// What a peer server offers to write into, as its `describe` method returns
/// it: with this, a client needs only the server's address, not the
/// descriptors from its `LISTENING` line.
public struct PeerDescription: Sendable {
    /// Written by the `tcp` backend.
    public var region: RegionDescriptor
    /// With `--shm`: a region in /dev/shm and the unix socket that serves it.
    public var shared: (region: RegionDescriptor, socketPath: String)?
    /// With `--fabric`: the region registered with the libfabric endpoint.
    public var fabricRegion: RegionDescriptor?

    public init(region: RegionDescriptor, shared: (region: RegionDescriptor, socketPath: String)? = nil, fabricRegion: RegionDescriptor? = nil) {
        self.region = region
        self.shared = shared
        self.fabricRegion = fabricRegion
    }

    /// One line per region: "tcp <hex>", "shm <hex> <socket path>", "fabric <hex>".
    func encoded() throws -> String {
        var lines = ["tcp \(try region.hex())"]
        if let shared { lines.append("shm \(try shared.region.hex()) \(shared.socketPath)") }
        if let fabricRegion { lines.append("fabric \(try fabricRegion.hex())") }
        return lines.joined(separator: "\n")
    }

    init(decoding text: String) throws {
        var region: RegionDescriptor?
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            switch (words.first, words.count) {
            case ("tcp", 2): region = try RegionDescriptor(hex: words[1])
            case ("shm", 3): shared = (try RegionDescriptor(hex: words[1]), String(words[2]))
            case ("fabric", 2): fabricRegion = try RegionDescriptor(hex: words[1])
            default: continue  // a newer server's region kind: not ours to use
            }
        }
        guard let region else { throw WireError(.badMessage, "the peer's description names no tcp region: \(text.prefix(200))") }
        self.region = region
    }

    /// Asks the peer server at `address` for its description.
    public static func fetch(from address: RPCAddress) async throws -> PeerDescription {
        let reply = try await RPCConnection.withConnection(to: address, configuration: .peer("describe")) { connection in
            try await connection.unary(method: PeerMethods.describe, RPCMessage(), timeout: .seconds(10))
        }
        return try PeerDescription(decoding: String(buffer: reply.message))
    }
}
