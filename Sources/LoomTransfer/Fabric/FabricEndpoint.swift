import CLoomFabric
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// One libfabric RDM endpoint: the process's door for the `fabric` backend,
/// both for writing into peers and for being written into. A dedicated
/// thread drives the completion queue: it resolves this side's writes and
/// hands peers' immediates (remote completion data) to `onRemoteData`.
/// That thread keeps the endpoint alive: call `close()` when done with it.
public final class FabricEndpoint: Sendable {
    /// What the provider granted, read once at open.
    public struct Capabilities: Sendable {
        public var provider: String
        public var fabric: String
        public var domain: String
        /// Remote writes name bytes by virtual address (else by offset).
        public var virtualAddressing: Bool
        /// Sources of writes must be registered too (FI_MR_LOCAL: efa, verbs).
        public var registersSources: Bool
        /// Writes to one peer are placed in posting order, so an immediate
        /// can ride on a write's last segment.
        public var orderedWrites: Bool
        /// Bytes of remote completion data per write: 8 carries the
        /// immediate plus what deduplicates it; 4 (efa, verbs) the immediate only.
        public var completionDataBytes: Int
        public var sendQueueDepth: Int
        /// Writes one post may gather (the provider's iov limits).
        public var segmentsPerWrite: Int
        /// A write to a dead peer or a revoked key is never completed, not
        /// even with an error (`shm`): only the ack timeout fails it.
        public var silentFailures: Bool
        /// A write of no bytes completes at the writer; where it does not
        /// (`shm`), a write that only rings carries a byte nobody reads.
        public var completesEmptyWrites: Bool
    }

    public let capabilities: Capabilities
    /// This endpoint's address in the provider's format (fi_getname).
    public let address: [UInt8]
    private let state: NIOLockedValueBox<OpenState>
    let pending = NIOLockedValueBox(PendingWrites())
    private let remoteData = NIOLockedValueBox<Handler<UInt64>?>(nil)
    private let stopped = NIOLockedValueBox(false)
    private let progressExited = ConditionLock(value: false)
    let handoff = ProgressHandoff()

    /// The handle and whether posting is still allowed. Posts and close take
    /// the same lock, so no post can race the handle being freed.
    private struct OpenState {
        var handle: FabricHandle?
        var nextKey: UInt64 = 1
        /// See `freeze()`.
        var frozen = false
        /// The handle while calls may use it: not closed, not frozen.
        var usable: FabricHandle? { frozen ? nil : handle }
    }

    /// Opens an endpoint of `provider` ("tcp;ofi_rxm", "shm", "efa",
    /// "verbs;ofi_rxm") bound to `node`, an address of this host. With
    /// `useWriteOrdering` false, immediates always wait for their writes'
    /// acknowledgements, as on providers that do not order writes.
    public init(provider: String, node: String?, useWriteOrdering: Bool = true) throws(TransferError) {
        var handle: OpaquePointer?
        var raw = loom_fabric_caps()
        var message = [CChar](repeating: 0, count: 512)
        let result = loom_fabric_open(provider, node, &handle, &raw, &message, message.count)
        guard result == 0, let handle else {
            throw TransferError(.peerUnavailable, "libfabric: \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) (fi_info -p \"\(provider)\" lists what this host offers)")
        }
        capabilities = Capabilities(
            provider: Self.string(raw.provider), fabric: Self.string(raw.fabric), domain: Self.string(raw.domain),
            virtualAddressing: raw.virt_addr != 0, registersSources: raw.local_mr != 0, orderedWrites: useWriteOrdering && raw.ordered_writes != 0,
            completionDataBytes: raw.cq_data_size, sendQueueDepth: raw.tx_size,
            segmentsPerWrite: raw.max_segments, silentFailures: raw.silent_failures != 0,
            completesEmptyWrites: raw.empty_writes_complete != 0)
        var bytes = [UInt8](repeating: 0, count: 256)
        var length = bytes.count
        guard loom_fabric_address(handle, &bytes, &length) == 0 else {
            loom_fabric_close(handle)
            throw TransferError(.peerUnavailable, "libfabric: the \(provider) endpoint has no address")
        }
        address = Array(bytes.prefix(length))
        let shared = FabricHandle(raw: handle)
        state = NIOLockedValueBox(OpenState(handle: shared))
        let progress = Thread { [self] in runProgress(shared) }
        progress.name = "loom-fabric-progress"
        progress.start()
    }

    private static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Stops the progress thread, fails every write still waiting, and
    /// closes the endpoint. Peers writing to it see their writes fail.
    public func close() {
        guard let handle = state.withLockedValue({ state -> FabricHandle? in
            defer { state.handle = nil }
            return state.handle
        }) else { return }
        stopped.withLockedValue { $0 = true }
        progressExited.lock(whenValue: true)
        progressExited.unlock()
        for batch in pending.withLockedValue({ $0.removeAll() }) {
            batch.fail(TransferError(.peerUnavailable, "the fabric endpoint was closed with the write in flight"))
        }
        loom_fabric_close(handle.raw)
    }

    /// Stops all progress, as a process that died would, but frees nothing
    /// until `close()`: no thread reads the completion queue again and
    /// every call fails as if closed. Tests use it to kill an in-process
    /// peer on `shm`, where a writer keeps writing into a dead peer's
    /// region (it outlives the process), but where closing the endpoint in
    /// the writer's own process would unmap that region under the writer.
    func freeze() {
        state.withLockedValue { $0.frozen = true }
        stopped.withLockedValue { $0 = true }
        progressExited.lock(whenValue: true)
        progressExited.unlock()
    }

    /// Whether writes can still be posted: not closed, not frozen.
    public var isOpen: Bool {
        state.withLockedValue { $0.usable != nil }
    }

    /// Called on the progress thread with each peer write's completion data.
    public func onRemoteData(_ handler: @escaping @Sendable (UInt64) -> Void) {
        remoteData.withLockedValue { $0 = Handler(handler) }
    }

    /// A peer's address, inserted into the address vector.
    public func insertPeer(_ address: [UInt8]) throws(TransferError) -> UInt64 {
        try withHandle("insert a peer") { handle throws(TransferError) in
            var peer: UInt64 = 0
            let result = loom_fabric_insert_peer(handle, address, &peer)
            guard result == 0 else { throw TransferError(.peerUnavailable, "libfabric could not add the peer's address: \(Self.describe(Int(result)))") }
            return peer
        }
    }

    public func removePeer(_ peer: UInt64) {
        _ = try? withHandle("remove a peer") { handle in loom_fabric_remove_peer(handle, peer) }
    }

    /// A memory registration; deregisters itself when released (if the
    /// endpoint is still open: closing it releases every registration).
    public final class Registration: Sendable {
        public let key: UInt64
        /// Opaque handles libfabric handed out, kept as integers; the
        /// handle is cleared once deregistered.
        private let handle: NIOLockedValueBox<UInt?>
        let descriptor: UInt
        let endpoint: FabricEndpoint

        init(key: UInt64, handle: UInt, descriptor: UInt, endpoint: FabricEndpoint) {
            self.key = key
            self.handle = NIOLockedValueBox(handle)
            self.descriptor = descriptor
            self.endpoint = endpoint
        }

        /// Revokes peers' access now; writes naming the key fail from here on.
        public func deregister() {
            guard let handle = handle.withLockedValue({ handle in defer { handle = nil }; return handle }) else { return }
            _ = try? endpoint.withHandle("deregister") { _ in loom_fabric_deregister(UnsafeMutableRawPointer(bitPattern: handle)) }
        }

        deinit { deregister() }
    }

    /// Registers `memory`; with `remoteWrite`, peers may write into it.
    public func register(_ memory: UnsafeMutableRawBufferPointer, remoteWrite: Bool) throws(TransferError) -> Registration {
        let requested = state.withLockedValue { state in
            defer { state.nextKey += 1 }
            return state.nextKey
        }
        return try withHandle("register memory") { handle throws(TransferError) in
            var raw: UnsafeMutableRawPointer?
            var descriptor: UnsafeMutableRawPointer?
            var key: UInt64 = 0
            let result = loom_fabric_register(handle, memory.baseAddress, memory.count, remoteWrite ? 1 : 0, requested, &raw, &key, &descriptor)
            guard result == 0 else {
                throw TransferError(.invalidRequest, "libfabric could not register \(memory.count) bytes: \(Self.describe(Int(result)))")
            }
            return Registration(key: key, handle: UInt(bitPattern: raw), descriptor: UInt(bitPattern: descriptor), endpoint: self)
        }
    }

    func withHandle<R>(_ what: String, _ body: (OpaquePointer) throws(TransferError) -> R) throws(TransferError) -> R {
        let result: Result<R, TransferError> = state.withLockedValue { state in
            guard let handle = state.usable else {
                return .failure(TransferError(.peerUnavailable, "cannot \(what): the fabric endpoint is closed"))
            }
            do throws(TransferError) { return .success(try body(handle.raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    static func describe(_ code: Int) -> String {
        "\(String(cString: loom_fabric_strerror(Int32(truncatingIfNeeded: code)))) (\(code))"
    }
}

/// The raw endpoint handle.
///
/// `@unchecked Sendable`: every use but polling happens under
/// `FabricEndpoint.state`'s lock, which `close()` also takes to clear it
/// before freeing; polling happens on the progress thread alone, which
/// `close()` joins first. The domain is opened FI_THREAD_SAFE, so a poll
/// may run beside another thread's post.
struct FabricHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

extension FabricEndpoint {
    /// How long the progress thread blocks in the completion queue's wait
    /// when idle: the bound on noticing a deadline or a close.
    static let idleWaitMilliseconds: Int32 = 50

    private func runProgress(_ handle: FabricHandle) {
        var completions = [loom_fabric_completion](repeating: loom_fabric_completion(), count: 32)
        while !stopped.withLockedValue({ $0 }) {
            handoff.progressThreadWaits(atMost: .milliseconds(Int64(Self.idleWaitMilliseconds)))
            // Blocks in the completion queue's wait, never spins: on a
            // machine with few cores a spinning progress thread takes the
            // core that the woken caller needs next (measured: no gain).
            let count = completions.withUnsafeMutableBufferPointer { loom_fabric_poll(handle.raw, $0.baseAddress, $0.count, Self.idleWaitMilliseconds) }
            if count > 0 { deliver(completions.prefix(count)) }
            let now = NIODeadline.now()
            for batch in pending.withLockedValue({ $0.expire(now: now) }) {
                batch.fail(TransferError(.ackLost, capabilities.silentFailures
                    ? "a fabric write was not acknowledged in time; the \(capabilities.provider) provider reports neither a dead peer nor a refused key, so the peer may be gone or the region revoked; not retried"
                    : "a fabric write was not acknowledged in time; it may or may not have landed and is not retried"))
            }
        }
        progressExited.lock()
        progressExited.unlock(withValue: true)
    }

    func deliver(_ completions: some Sequence<loom_fabric_completion>) {
        let handler = remoteData.withLockedValue { $0 }
        for completion in completions {
            if completion.remote_data != 0 {
                handler?.call(completion.data)
                continue
            }
            if completion.token == 0 { continue }
            let failure = completion.error == 0 ? nil : Self.failure(completion)
            guard let (batch, done) = pending.withLockedValue({ $0.complete(token: completion.token) }) else { continue }
            if let failure { batch.fail(failure) } else if done { batch.succeed() }
        }
    }

    /// A write the provider reports failed after posting: refused by the
    /// target (a key or range it does not know) or cut off with the peer.
    private static func failure(_ completion: loom_fabric_completion) -> TransferError {
        TransferError(.ackLost, "a fabric write failed: \(describe(Int(completion.error))), provider error \(completion.prov_errno); the target refused it (deregistered region, bad key) or went away, and it is not retried")
    }
}
