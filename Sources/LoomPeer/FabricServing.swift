import LoomTransfer
import LoomWire
import NIOCore

/// A peer server's libfabric side: its receiver, writing into the same
/// transfer target, with its own region (announced as a `FABRIC
/// <descriptor>` line) and a pong service for the latency bench.
struct FabricServing {
    let fabric: FabricTarget
    let region: RegisteredRegion

    init(fabric: FabricTarget, regionBytes: Int) throws {
        self.fabric = fabric
        region = try fabric.register(length: regionBytes)
    }

    /// `pong`, beside the fabric receiver's attach: the caller names its own RPC address, a
    /// fabric region of its own and a count; we attach back and answer each
    /// of its writes (immediate `pingBase + i`) with one (immediate `i`).
    func servePong(into services: inout RPCServices) {
        services.unary(PeerMethods.pong) { [fabric] request in
            let words = String(buffer: request.message.message).split(separator: " ").map(String.init)
            guard words.count == 4, let port = Int(words[1]), let count = Int(words[3]), count >= 1 else {
                throw WireError(.badMessage, "pong wants \"<host> <port> <descriptor hex> <count>\"")
            }
            let back = try RegionDescriptor(hex: words[2])
            let source = RegionTable(owner: "pong", epoch: 1).register(length: 64)
            try await FabricTransport.withTransport(to: .tcp(host: words[0], port: port), endpoint: fabric.endpoint, configuration: .peer("server")) { transport in
                for i in 1...count {
                    let ping = pingBase + UInt32(i)
                    try await fabric.target.counters.wait(for: ping, count: 1, timeout: .seconds(30))
                    fabric.target.counters.reset(ping)
                    try await transport.write(.single(from: source, offset: 0, count: 64, to: back, offset: 0, immediate: UInt32(i)))
                }
            }
            return RPCMessage()
        }
    }
}

/// Pings carry immediates above this, pongs below, so one counter table
/// tells them apart.
let pingBase: UInt32 = 0x4000_0000
