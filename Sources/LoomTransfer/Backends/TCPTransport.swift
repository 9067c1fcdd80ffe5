import LoomWire
import NIOConcurrencyHelpers
import NIOCore

/// The `tcp` backend: writes ride LoomWire unary calls (message = the write's
/// segments, attachment = its bytes, written without copying), over several
/// connections ("lanes", Nagle off). A large write is cut into parts that
/// are striped across the lanes and sent at once, so every lane has the
/// next part queued while the peer is still reading the last.
public final class TCPTransport: TransferTransport {
    public static let writeMethod: UInt32 = 100
    /// Writes are cut into parts of at most this many bytes (less if either
    /// side's frame limit demands it).
    public static let partBytes = 8 << 20
    /// Parts are numbered in the low byte of their op id; 0 and 0xFF are taken.
    static let maxParts = 254

    let lanes: [RPCConnection]
    let sender: String
    let senderEpoch: UInt64
    let ackTimeout: Duration
    /// This side's largest frame.
    let frameLimit: Int

    init(lanes: [RPCConnection], sender: String, senderEpoch: UInt64, ackTimeout: Duration, frameLimit: Int) {
        self.lanes = lanes
        self.sender = sender
        self.senderEpoch = senderEpoch
        self.ackTimeout = ackTimeout
        self.frameLimit = frameLimit
    }

    /// Opens `lanes` connections to a peer serving `TransferService`, runs
    /// `body`, then closes them.
    public static func withTransport<Result: Sendable>(
        to address: RPCAddress, lanes: Int = 2, configuration: RPCConfiguration,
        ackTimeout: Duration = .seconds(10), _ body: (TCPTransport) async throws -> Result
    ) async throws -> Result {
        precondition(lanes > 0)
        func open(_ opened: [RPCConnection]) async throws -> Result {
            if opened.count == lanes {
                return try await body(TCPTransport(
                    lanes: opened, sender: configuration.nodeName, senderEpoch: configuration.epoch,
                    ackTimeout: ackTimeout, frameLimit: configuration.maxFrameSize))
            }
            do {
                return try await RPCConnection.withConnection(to: address, configuration: configuration) { try await open(opened + [$0]) }
            } catch let error as WireError where error.code == .unavailable {
                throw TransferError(.peerUnavailable, error.message)
            }
        }
        return try await open([])
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

    /// Half the smaller frame limit leaves room for the message naming the
    /// segments, whatever their count.
    private var partLimit: Int {
        let peerLimit = lanes.map { Int(clamping: $0.peer.hello.maxFrameSize) }.min()!
        return min(Self.partBytes, min(frameLimit, peerLimit) / 2)
    }

    /// Consecutive segments grouped into parts of at most `limit` bytes; a
    /// segment longer than that is cut (its bytes are slices, not copies).
    static func parts(of segments: [WriteOperation.Segment], limit: Int) throws(TransferError) -> [[WriteOperation.Segment]] {
        var parts: [[WriteOperation.Segment]] = []
        var part: [WriteOperation.Segment] = []
        var filled = 0
        for var segment in segments {
            repeat {
                if filled == limit {
                    parts.append(part)
                    part = []
                    filled = 0
                }
                let count = min(segment.bytes.readableBytes, limit - filled)
                var piece = segment
                piece.bytes = segment.bytes.readSlice(length: count)!
                segment.offset += count
                part.append(piece)
                filled += count
            } while segment.bytes.readableBytes > 0
        }
        parts.append(part)
        guard parts.count <= maxParts else {
            throw TransferError(.invalidRequest, "a write of \(segments.reduce(0) { $0 + $1.bytes.readableBytes }) bytes needs \(parts.count) parts of \(limit) bytes; the tcp backend sends at most \(maxParts) per write: split it")
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
        var payload = ByteBuffer()
        request.segments = segments.map { segment in
            var wire = Loom_Transfer_WriteSegment()
            wire.regionID = segment.region.regionID
            wire.epoch = segment.region.epoch
            wire.offset = UInt64(segment.offset)
            wire.length = UInt64(segment.bytes.readableBytes)
            return wire
        }
        if segments.count == 1 { payload = segments[0].bytes } else { for segment in segments { payload.writeImmutableBuffer(segment.bytes) } }
        let connection = lanes[lane ?? Int((opID >> 8) % UInt64(lanes.count))]
        do {
            _ = try await connection.unary(method: Self.writeMethod, try RPCMessage(request, attachment: payload), timeout: ackTimeout)
        } catch let error as WireError {
            throw Self.transferError(error, opID: request.opID)
        }
    }

    static func transferError(_ error: WireError, opID: UInt64) -> TransferError {
        if error.code.rawValue > TransferService.errorCodeBase,
           let code = TransferError.Code(rawValue: error.code.rawValue - TransferService.errorCodeBase) {
            return TransferError(code, error.message)
        }
        switch error.code {
        case .unavailable:
            return TransferError(.peerUnavailable, error.message)
        default:
            return TransferError(.ackLost, "write \(opID) was sent but not acknowledged (\(error)); it may or may not have landed and is not retried")
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

/// The receiving half of the `tcp` backend, served on an RPC server.
public enum TransferService {
    static let errorCodeBase: UInt32 = 1000

    public static func register(into services: inout RPCServices, target: TransferTarget) {
        services.unary(TCPTransport.writeMethod, attachments: SegmentSink(target: target)) { request in
            // A write with bytes landed through the sink; one without any
            // (an immediate alone) arrives whole.
            if let prepared = request.landed as? PreparedWrite { return try RPCMessage(target.complete(prepared)) }
            let write: Loom_Transfer_WriteRequest = try request.message.decode()
            do {
                return try RPCMessage(try target.apply(write, payload: request.message.attachment))
            } catch let error as TransferError {
                throw WireError(WireError.Code(rawValue: errorCodeBase + error.code.rawValue), error.message)
            }
        }
    }
}
