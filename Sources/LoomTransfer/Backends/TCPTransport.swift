import LoomWire
import NIOConcurrencyHelpers
import NIOCore

/// The `tcp` backend. An RPC call sets up the data lanes and stays open
/// while they are used; the lanes themselves are plain sockets (Nagle off),
/// each with its own threads, so a part's bytes go from the source buffers
/// into the socket and from the socket into the target's region, with no
/// event loop or frame decoder in between. A large write is cut into parts
/// striped across the lanes and sent at once, so every lane has the next
/// part queued while the peer is still reading the last.
public final class TCPTransport: TransferTransport {
    public static let lanesMethod: UInt32 = 107
    /// Writes are cut into parts of at most this many bytes.
    public static let partBytes = 8 << 20
    /// Some 30 bytes each in a part's header: well inside a lane's 1 MiB message.
    static let segmentsPerPart = 16_384
    /// Parts are numbered in the low byte of their op id; 0 and 0xFF are taken.
    static let maxParts = 254

    let lanes: [LaneWriter]
    let sender: String
    let senderEpoch: UInt64
    let partLimit: Int

    init(lanes: [LaneWriter], sender: String, senderEpoch: UInt64, partLimit: Int) {
        self.lanes = lanes
        self.sender = sender
        self.senderEpoch = senderEpoch
        self.partLimit = partLimit
    }

    /// Opens `lanes` data lanes to a peer serving `TransferService`, runs
    /// `body`, then closes them. A part waits at most `ackTimeout` for the
    /// peer's acknowledgement.
    public static func withTransport<Result: Sendable>(
        to address: RPCAddress, lanes: Int = 2, configuration: RPCConfiguration,
        ackTimeout: Duration = .seconds(10), partBytes: Int = TCPTransport.partBytes, _ body: (TCPTransport) async throws -> Result
    ) async throws -> Result {
        precondition(lanes > 0 && partBytes > 0)
        guard case .tcp(let host, _) = address else {
            throw TransferError(.invalidRequest, "the tcp backend needs a tcp address, not \(address); use shm for a peer on a Unix socket")
        }
        return try await TransferError.mapping(backend: "tcp", peer: address, method: lanesMethod) {
            try await RPCConnection.withConnection(to: address, configuration: configuration) { connection in
                var request = Loom_Transfer_TcpLanesRequest()
                request.host = host
                request.lanes = UInt32(lanes)
                return try await connection.serverStreaming(method: lanesMethod, try RPCMessage(request)) { stream in
                    var replies = stream.makeAsyncIterator()
                    guard let item = try await replies.next() else {
                        throw TransferError(.peerUnavailable, "\(connection.peer.hello.nodeName) ended the tcp lanes call without opening lanes")
                    }
                    let opened: Loom_Transfer_TcpLanesOpened = try item.decode()
                    // The address the call reached, not the name again: a
                    // name with several addresses may resolve first to one
                    // where the listener, bound where the call arrived, is not.
                    let laneHost = laneHost(connection.remoteAddress, otherwise: host)
                    let writers = try openLanes(lanes, host: laneHost, opened: opened, ackTimeout: ackTimeout)
                    let transport = TCPTransport(lanes: writers, sender: configuration.nodeName, senderEpoch: configuration.epoch, partLimit: partBytes)
                    do {
                        let result = try await body(transport)
                        for lane in writers { await lane.close() }
                        return result
                    } catch {
                        for lane in writers { await lane.close() }
                        throw error
                    }
                }
            }
        }
    }

    /// The numeric form of `address`, where lanes are dialled and bound;
    /// `name` for IPv6 link-local, whose address alone, without its
    /// interface, can be neither.
    static func laneHost(_ address: SocketAddress?, otherwise name: String) -> String {
        guard let numeric = address?.ipAddress, !numeric.lowercased().hasPrefix("fe80:") else { return name }
        return numeric
    }

    private static func openLanes(_ count: Int, host: String, opened: Loom_Transfer_TcpLanesOpened, ackTimeout: Duration) throws(TransferError) -> [LaneWriter] {
        var sockets: [LaneSocket] = []
        do throws(TransferError) {
            for _ in 0..<count {
                let socket = try LaneSocket.connect(host: host, port: Int(opened.port))
                sockets.append(socket)
                try socket.send(LaneFrames.greeting(token: opened.token))
            }
        } catch {
            for socket in sockets { socket.close() }
            throw error
        }
        return sockets.map { LaneWriter(socket: $0, ackTimeout: ackTimeout) }
    }

    public func write(_ operation: WriteOperation) async throws {
        let parts = try Self.parts(of: operation.segments, limit: partLimit)
        guard parts.count > 1 else {
            return try await send(operation.segments, immediate: operation.immediate, opID: operation.id << 8, lane: nil)
        }
        // The parts land in any order; the immediate goes only after all of
        // them are acknowledged, so it still means "all bytes are there".
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, part) in parts.enumerated() {
                group.addTask {
                    try await self.send(part, immediate: nil, tag: operation.immediate ?? 0, opID: operation.id << 8 | UInt64(index + 1), lane: index % self.lanes.count)
                }
            }
            try await group.waitForAll()
        }
        if let immediate = operation.immediate { try await send([], immediate: immediate, opID: operation.id << 8 | 0xFF, lane: 0) }
    }

    /// Consecutive segments grouped into parts of at most `limit` bytes and
    /// `segmentLimit` segments (a part's header lists its segments, and a
    /// lane's messages are bounded); a segment longer than `limit` is cut
    /// (its bytes are slices, not copies).
    static func parts(of segments: [WriteOperation.Segment], limit: Int, segmentLimit: Int = segmentsPerPart) throws(TransferError) -> [[WriteOperation.Segment]] {
        var parts: [[WriteOperation.Segment]] = []
        var part: [WriteOperation.Segment] = []
        var filled = 0
        for var segment in segments {
            repeat {
                if filled == limit || part.count == segmentLimit {
                    parts.append(part)
                    part = []
                    filled = 0
                }
                let count = min(segment.count, limit - filled)
                part.append(segment.removeFirst(count))
                filled += count
            } while segment.count > 0
        }
        parts.append(part)
        guard parts.count <= maxParts else {
            throw TransferError(.invalidRequest, "a write of \(segments.reduce(0) { $0 + $1.count }) bytes needs \(parts.count) parts of \(limit) bytes; the tcp backend sends at most \(maxParts) per write: split it")
        }
        return parts
    }

    /// `opID` is the operation's id shifted left by 8, with the low byte
    /// naming the stripe part, so each part is deduplicated on its own.
    private func send(_ segments: [WriteOperation.Segment], immediate: UInt32?, tag: UInt32 = 0, opID: UInt64, lane: Int?) async throws {
        var request = Loom_Transfer_WriteRequest()
        request.opID = opID
        request.sender = sender
        request.senderEpoch = senderEpoch
        request.carriesImmediate = immediate != nil
        // Stripes carry the operation's immediate uncounted, so a target
        // that admits writes by it (a decode worker's reservation) can
        // check every part, not only the last.
        request.immediate = immediate ?? tag
        request.segments = segments.map(\.wire)
        let reply = try await lanes[lane ?? Int((opID >> 8) % UInt64(lanes.count))].send(request, payload: segments.map(\.bytes))
        guard reply.code == 0 else {
            throw TransferError(TransferError.Code(rawValue: reply.code) ?? .invalidRequest, reply.text)
        }
    }
}

extension WireError {
    /// A transfer failure as an RPC error, code 1000 + its code, so a
    /// caller further up can tell what failed (`TransferError(wire:)`).
    public init(_ error: TransferError) {
        self.init(Code(rawValue: TransferService.errorCodeBase + error.code.rawValue), error.message)
    }
}

extension TransferError {
    /// The transfer failure a `WireError(_:)` carried, if it was one.
    init?(wire error: WireError) {
        guard error.code.rawValue > TransferService.errorCodeBase,
              let code = Code(rawValue: error.code.rawValue - TransferService.errorCodeBase) else { return nil }
        self.init(code, error.message)
    }
}

/// The receiving half of the `tcp` backend, served on an RPC server: each
/// writer's lanes call gets a listener on the address its call arrived at,
/// and its lanes are served until the call ends.
public enum TransferService {
    static let errorCodeBase: UInt32 = WireError.Space.transfer.lowerBound

    public static func register(into services: inout RPCServices, target: TransferTarget) {
        services.serverStreaming(TCPTransport.lanesMethod) { request, stream in
            let setup: Loom_Transfer_TcpLanesRequest = try request.message.decode()
            guard (1...64).contains(setup.lanes) else {
                throw WireError(TransferError(.invalidRequest, "a writer asked for \(setup.lanes) tcp lanes; 1 to 64 are served"))
            }
            // Bound where the call arrived, not to the name the writer
            // dialled: behind a NAT or an alias that is not our address.
            let host = TCPTransport.laneHost(request.localAddress, otherwise: setup.host)
            let server: LaneServer
            do throws(TransferError) { server = try LaneServer(host: host, lanes: Int(setup.lanes), target: target) } catch { throw WireError(error) }
            var opened = Loom_Transfer_TcpLanesOpened()
            opened.port = UInt32(server.port)
            opened.token = server.token
            do { try await stream.send(opened) } catch {
                server.stop()
                await server.join()
                throw error
            }
            // Served until the writer closes its lanes, or the call ends
            // (the writer done, or either side gone).
            await withTaskCancellationHandler {
                await server.join()
            } onCancel: {
                server.stop()
            }
        }
    }
}
