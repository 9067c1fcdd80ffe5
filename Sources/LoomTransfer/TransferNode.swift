import LoomWire

/// Both sides of the transfer layer for one process: the target peers
/// write into, the receivers (one per backend) that register its memory
/// and serve writers' setup calls, and the transports it writes to peers
/// through. A worker, a store node or a test peer is built the same way:
/// name the receivers, register regions over them, serve `services`, put
/// `configuration` (which carries the offers) on the RPC server.
public final class TransferNode: Sendable {
    public let target: TransferTarget
    public let peers: TransferPeers
    /// The RPC configuration given, with every receiver's offers added.
    public let configuration: RPCConfiguration
    private let receivers: [any TransferReceiver]

    /// `receivers` in order of preference (see `register(length:over:)`),
    /// one per backend at most; they all land in `target`.
    public init(target: TransferTarget, receivers: [any TransferReceiver], configuration: RPCConfiguration) {
        precondition(Set(receivers.map(\.backend)).count == receivers.count, "one receiver per backend")
        self.target = target
        self.receivers = receivers
        var configuration = configuration
        configuration.transferBackends += receivers.flatMap(\.offers)
        self.configuration = configuration
        let fabric = receivers.lazy.compactMap { $0 as? FabricTarget }.first
        peers = TransferPeers(configuration: configuration, fabric: fabric?.endpoint)
    }

    /// The usual receivers for a process that can refuse writes before
    /// they land (`admission`): `shm` and `tcp` into `target`, and with a
    /// fabric provider a `fabric` receiver sharing its regions and counters
    /// but not its admission (a fabric write lands before any check), for
    /// regions the owner exposes only while a policy would admit writes.
    public static func standard(
        target: TransferTarget, fabricProvider: String?, host: String, configuration: RPCConfiguration
    ) throws -> TransferNode {
        var receivers: [any TransferReceiver] = [SharedMemoryReceiver(target: target), TCPReceiver(target: target)]
        if let fabricProvider {
            let unchecked = TransferTarget(regions: target.regions, counters: target.counters)
            receivers.append(try FabricTarget(endpoint: FabricEndpoint(provider: fabricProvider, node: host), target: unchecked))
        }
        return TransferNode(target: target, receivers: receivers, configuration: configuration)
    }

    public func receiver(_ backend: TransferBackend) -> (any TransferReceiver)? {
        receivers.first { $0.backend == backend }
    }

    /// Registers `length` bytes with the first of `backends` this node
    /// receives over that manages to (`shm` fails without /dev/shm, say).
    /// Every backend's error is kept for the one thrown when none can.
    public func register(length: Int, over backends: [TransferBackend]) throws -> RegisteredRegion {
        var failures: [String] = []
        for backend in backends {
            guard let receiver = receiver(backend) else { continue }
            do {
                return try receiver.register(length: length)
            } catch {
                failures.append("\(backend): \(error)")
            }
        }
        throw TransferError(.invalidRequest, "could not register \(length) bytes over \(backends.map(\.rawValue)) (\(failures.isEmpty ? "no receiver for any of them" : failures.joined(separator: "; ")))")
    }

    /// Every receiver's setup methods.
    public func serve(into services: inout RPCServices) {
        for receiver in receivers { receiver.serve(into: &services) }
    }

    public func close() {
        peers.closeAll()
        for receiver in receivers { receiver.close() }
    }
}
