import NIOCore
import Synchronization

/// One write's bytes as RDMA WRITEs name them: a source buffer, and where in
/// the peer's registered memory it goes.
struct VerbsSegment: Sendable {
    var bytes: ByteBuffer
    var remoteAddress: UInt64
    var remoteKey: UInt32
}

/// The work requests of one write operation, waited on together: the
/// caller resumes when all completed, or at the first failure. The batch
/// keeps the source bytes and their registrations until the device is done
/// with every request, even after the caller has given up: the device may
/// still be reading them.
final class VerbsWriteBatch: Sendable {
    private enum Outcome {
        case waiting(CheckedContinuation<Void, Error>?)
        case done(Result<Void, TransferError>)
    }

    private struct State {
        var remaining: Int
        var outcome = Outcome.waiting(nil)
        var sources: [(bytes: ByteBuffer, registration: VerbsMemoryRegistration)]
    }

    private let state: Mutex<State>
    private let device: any VerbsDevice

    /// Registers each segment's bytes as a write source.
    init(_ segments: [VerbsSegment], requests: Int, device: any VerbsDevice) throws(TransferError) {
        var sources: [(bytes: ByteBuffer, registration: VerbsMemoryRegistration)] = []
        for segment in segments {
            do throws(VerbsFailure) {
                let registration = try segment.bytes.withUnsafeReadableBytes { bytes throws(VerbsFailure) in
                    try device.register(UnsafeMutableRawBufferPointer(mutating: bytes), remoteWrite: false)
                }
                sources.append((segment.bytes, registration))
            } catch {
                for source in sources { device.deregister(source.registration) }
                throw TransferError(.invalidRequest, "could not register \(segment.bytes.readableBytes) bytes as an RDMA write source: \(error)")
            }
        }
        self.device = device
        self.state = Mutex(State(remaining: requests, sources: sources))
    }

    /// Where each segment's bytes are, for its work request.
    var sourceKeys: [(address: UInt64, key: UInt32)] {
        state.withLock { state in
            state.sources.map { source in
                (source.bytes.withUnsafeReadableBytes { UInt64(UInt(bitPattern: $0.baseAddress)) }, source.registration.localKey)
            }
        }
    }

    /// One of the batch's work requests finished. The first failure, or
    /// the last success, resumes the caller; the last releases the sources.
    func finished(_ result: Result<Void, TransferError>) {
        var failed = false
        if case .failure = result { failed = true }
        let (waiter, resolved, released) = state.withLock { state in
            state.remaining -= 1
            let last = state.remaining == 0
            var waiter: CheckedContinuation<Void, Error>?
            var resolved: Result<Void, TransferError>?
            if case .waiting(let parked) = state.outcome, last || failed {
                waiter = parked
                resolved = result
                state.outcome = .done(result)
            }
            let released = last ? state.sources : []
            if last { state.sources = [] }
            return (waiter, resolved, released)
        }
        // Deregistered before the bytes go: the device must not read freed memory.
        for source in released { device.deregister(source.registration) }
        if let waiter, let resolved { waiter.resume(with: resolved.mapError { $0 as Error }) }
    }

    func wait() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let done: Result<Void, TransferError>? = state.withLock { state in
                    if case .done(let result) = state.outcome { return result }
                    state.outcome = .waiting(continuation)
                    return nil
                }
                if let done { continuation.resume(with: done.mapError { $0 as Error }) }
            }
        } onCancel: {
            let waiter: CheckedContinuation<Void, Error>?? = state.withLock { state in
                guard case .waiting(let parked) = state.outcome else { return .none }
                state.outcome = .done(.failure(Self.cancelled))
                return .some(parked)
            }
            if case .some(.some(let continuation)) = waiter { continuation.resume(throwing: Self.cancelled) }
        }
    }

    private static let cancelled = TransferError(.ackLost, "cancelled while waiting for an RDMA write's completion; it may or may not have landed")
}
