import LoomWire
import NIOConcurrencyHelpers
import NIOCore

/// The `tcp` backend: writes ride LoomWire unary calls (message = the write's
/// segments, attachment = its bytes, written without copying), over several
/// connections ("lanes", Nagle off) so one large write is striped across them.
public final class TCPTransport: TransferTransport {
    public static let writeMethod: UInt32 = 100
    /// Writes at least this large are split over the lanes.
    public static let stripeThreshold = 1 << 20

    let lanes: [RPCConnection]
    let sender: String
    let senderEpoch: UInt64
    let ackTimeout: Duration

    init(lanes: [RPCConnection], sender: String, senderEpoch: UInt64, ackTimeout: Duration) {
        self.lanes = lanes
        self.sender = sender
        self.senderEpoch = senderEpoch
        self.ackTimeout = ackTimeout
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
                return try await body(TCPTransport(lanes: opened, sender: configuration.nodeName, senderEpoch: configuration.epoch, ackTimeout: ackTimeout))
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
        guard lanes.count > 1, operation.byteCount >= Self.stripeThreshold, operation.segments.count > 1 else {
            return try await send(operation.segments, immediate: operation.immediate, opID: operation.id << 8, lane: nil)
        }
        // Striped: the parts land in any order; the immediate goes only after
        // all of them are acknowledged, so it still means "all bytes are there".
        let parts = stride(from: 0, to: lanes.count, by: 1).map { lane in
            operation.segments.enumerated().filter { $0.offset % lanes.count == lane }.map(\.element)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (lane, part) in parts.enumerated() where !part.isEmpty {
                group.addTask { try await self.send(part, immediate: nil, tag: operation.immediate ?? 0, opID: operation.id << 8 | UInt64(lane + 1), lane: lane) }
            }
            try await group.waitForAll()
        }
        if let immediate = operation.immediate { try await send([], immediate: immediate, opID: operation.id << 8 | 0xFF, lane: 0) }
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
