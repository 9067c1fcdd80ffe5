import CLoomVerbs
import Foundation
import LoomWire
import Synchronization

/// The production `VerbsDevice`: an RDMA device opened through libibverbs
/// (the C layer in `CLoomVerbs`). Built and linked here, never run: these
/// machines have no RDMA NIC, so only its "no device" path is tested.
public final class LibibverbsDevice: VerbsDevice {
    public static let noDeviceMessage = "no RDMA device (ibv_get_device_list found none); use tcp or shm"

    public let port: Loom_Transfer_VerbsBackendOffer
    public let completionQueueDepth: Int
    private let handle: VerbsHandle
    private let state = Mutex(State())

    private struct State {
        var open = true
        var queuePairs: [UInt32: VerbsHandle] = [:]
    }

    /// The RDMA devices on this machine (mlx5_0, rxe0, ...); empty where
    /// there is no RDMA NIC or no kernel RDMA support.
    public static func deviceNames() -> [String] {
        let capacity = 64
        let width = Int(LOOM_VERBS_NAME_LENGTH)
        var buffer = [CChar](repeating: 0, count: capacity * width)
        let count = Int(loom_verbs_list(&buffer, Int32(capacity)))
        return (0..<min(count, capacity)).map { string(buffer[$0 * width..<($0 + 1) * width]) }
    }

    /// Opens `name` (nil: the first device) on `portNumber`, with the GID
    /// at `gidIndex` (RoCE needs the right one: see `show_gids`). Throws
    /// `backendUnavailable` when there is no such device, so the caller
    /// falls back to another backend. The completion queue serves every
    /// queue pair: with `VerbsEndpoint`'s default depths, 640 entries each.
    public init(name: String? = nil, portNumber: UInt8 = 1, gidIndex: Int32 = 0, completionQueueDepth: Int32 = 16384) throws(TransferError) {
        let present = Self.deviceNames()
        guard !present.isEmpty else { throw TransferError(.backendUnavailable, Self.noDeviceMessage) }
        var raw: OpaquePointer?
        var info = loom_verbs_port()
        var message = [CChar](repeating: 0, count: 512)
        let result = loom_verbs_open(name, portNumber, gidIndex, completionQueueDepth, &raw, &info, &message, message.count)
        guard result == 0, let raw else {
            throw TransferError(.backendUnavailable, "libibverbs: \(Self.string(message[...])) (devices here: \(present.joined(separator: ", ")))")
        }
        handle = VerbsHandle(raw: raw)
        self.completionQueueDepth = Int(completionQueueDepth)
        var offer = Loom_Transfer_VerbsBackendOffer()
        offer.device = withUnsafeBytes(of: info.device) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        offer.portNum = UInt32(info.port_num)
        offer.lid = UInt32(info.lid)
        offer.gid = withUnsafeBytes(of: info.gid) { Data($0) }
        offer.gidIndex = UInt32(bitPattern: info.gid_index)
        offer.mtu = UInt32(bitPattern: info.active_mtu)
        port = offer
    }

    private static func string(_ chars: ArraySlice<CChar>) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func describe(_ result: Int32) -> String {
        "\(String(cString: strerror(-result))) (\(-result))"
    }

    public func createQueuePair(sendQueueDepth: Int, receiveDepth: Int) throws(VerbsFailure) -> (qp: UInt32, psn: UInt32) {
        let created: Result<(UInt32, UInt32), VerbsFailure> = state.withLock { state in
            guard state.open else { return .failure(VerbsFailure(.fatal("the RDMA device is closed"))) }
            var qp: OpaquePointer?
            let result = loom_verbs_create_qp(handle.raw, Int32(sendQueueDepth), Int32(receiveDepth), &qp)
            guard result == 0, let qp else { return .failure(VerbsFailure(.fatal("ibv_create_qp: \(Self.describe(result))"))) }
            let number = loom_verbs_qp_num(qp)
            state.queuePairs[number] = VerbsHandle(raw: qp)
            return .success((number, loom_verbs_qp_psn(qp)))
        }
        return try created.get()
    }

    public func destroyQueuePair(_ qp: UInt32) {
        state.withLock { state in
            guard state.open, let handle = state.queuePairs.removeValue(forKey: qp) else { return }
            loom_verbs_destroy_qp(handle.raw)
        }
    }

    public func modify(_ qp: UInt32, to target: QueuePairState, remote: Loom_Transfer_VerbsBackendOffer?) throws(VerbsFailure) {
        try withQueuePair(qp) { pointer throws(VerbsFailure) in
            let result: Int32
            switch target {
            case .reset: result = loom_verbs_to_reset(pointer)
            case .initialized: result = loom_verbs_to_init(pointer)
            case .readyToSend: result = loom_verbs_to_rts(pointer)
            case .error: result = loom_verbs_to_error(pointer)
            case .readyToReceive:
                guard let remote else { throw VerbsFailure(.fatal("moving QP \(qp) to RTR needs the peer's queue pair")) }
                var peer = Self.remote(remote)
                result = loom_verbs_to_rtr(pointer, &peer)
            }
            guard result == 0 else { throw VerbsFailure(.fatal("ibv_modify_qp(QP \(qp) to \(target)): \(Self.describe(result))")) }
        }
    }

    private static func remote(_ offer: Loom_Transfer_VerbsBackendOffer) -> loom_verbs_remote {
        var peer = loom_verbs_remote()
        peer.qp_num = offer.qpNum
        peer.psn = offer.psn
        peer.lid = UInt16(truncatingIfNeeded: offer.lid)
        peer.mtu = Int32(truncatingIfNeeded: offer.mtu)
        withUnsafeMutableBytes(of: &peer.gid) { $0.copyBytes(from: offer.gid.prefix($0.count)) }
        return peer
    }

    public func postWrite(_ qp: UInt32, _ request: VerbsWorkRequest) throws(VerbsFailure) {
        precondition(request.length <= Int(UInt32.max), "one RDMA WRITE carries at most 4 GiB")
        try withQueuePair(qp) { pointer throws(VerbsFailure) in
            let result = loom_verbs_post_write(
                pointer, request.id, UnsafeRawPointer(bitPattern: UInt(request.localAddress)), UInt32(request.length), request.localKey,
                request.remoteAddress, request.remoteKey, request.immediate == nil ? 0 : 1, request.immediate ?? 0)
            if result == -ENOMEM { throw VerbsFailure(.sendQueueFull) }
            guard result == 0 else { throw VerbsFailure(.fatal("ibv_post_send on QP \(qp): \(Self.describe(result))")) }
        }
    }

    public func postReceives(_ qp: UInt32, count: Int, tag: UInt64) throws(VerbsFailure) {
        try withQueuePair(qp) { pointer throws(VerbsFailure) in
            let result = loom_verbs_post_receives(pointer, tag, Int32(count))
            guard result == 0 else { throw VerbsFailure(.fatal("ibv_post_recv on QP \(qp): \(Self.describe(result))")) }
        }
    }

    public func register(_ memory: UnsafeMutableRawBufferPointer, remoteWrite: Bool) throws(VerbsFailure) -> VerbsMemoryRegistration {
        let registered: Result<VerbsMemoryRegistration, VerbsFailure> = state.withLock { state in
            guard state.open else { return .failure(VerbsFailure(.fatal("the RDMA device is closed"))) }
            var raw: UnsafeMutableRawPointer?
            var localKey: UInt32 = 0
            var remoteKey: UInt32 = 0
            let result = loom_verbs_register(handle.raw, memory.baseAddress, memory.count, remoteWrite ? 1 : 0, &raw, &localKey, &remoteKey)
            guard result == 0 else { return .failure(VerbsFailure(.fatal("ibv_reg_mr of \(memory.count) bytes: \(Self.describe(result))"))) }
            return .success(VerbsMemoryRegistration(localKey: localKey, remoteKey: remoteKey, handle: UInt(bitPattern: raw)))
        }
        return try registered.get()
    }

    public func deregister(_ registration: VerbsMemoryRegistration) {
        state.withLock { state in
            // Closing the device already released every registration.
            guard state.open else { return }
            _ = loom_verbs_deregister(UnsafeMutableRawPointer(bitPattern: registration.handle))
        }
    }

    public func poll(max: Int, waitMilliseconds: Int32) throws(VerbsFailure) -> [VerbsCompletion] {
        guard state.withLock({ $0.open }) else { throw VerbsFailure(.fatal("the RDMA device is closed")) }
        var raw = [loom_verbs_completion](repeating: loom_verbs_completion(), count: max)
        // Outside the lock: the wait would hold up every post. Safe because
        // `close()` is never called while the one poller runs.
        let count = raw.withUnsafeMutableBufferPointer { loom_verbs_poll(handle.raw, $0.baseAddress, Int32($0.count), waitMilliseconds) }
        guard count >= 0 else { throw VerbsFailure(.fatal("ibv_poll_cq: \(Self.describe(count))")) }
        return raw.prefix(Int(count)).map { completion in
            VerbsCompletion(workRequestID: completion.wr_id, status: Self.status(completion), queuePair: completion.qp_num,
                            immediate: completion.is_receive_with_imm != 0 ? completion.imm_data : nil)
        }
    }

    /// Same thread and lifetime as `poll`: read outside the lock.
    public func events() throws(VerbsFailure) -> [VerbsEvent] {
        guard state.withLock({ $0.open }) else { throw VerbsFailure(.fatal("the RDMA device is closed")) }
        var events: [VerbsEvent] = []
        var raw = loom_verbs_event()
        while events.count < 64 {
            let result = loom_verbs_next_event(handle.raw, &raw)
            guard result >= 0 else { throw VerbsFailure(.fatal("ibv_get_async_event: \(Self.describe(result))")) }
            guard result == 1 else { break }
            let name = withUnsafeBytes(of: raw.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            switch Int(raw.kind) {
            case LOOM_VERBS_EVENT_QP_FAILED: events.append(.queuePairFailed(raw.qp_num, name))
            case LOOM_VERBS_EVENT_PORT_DOWN: events.append(.portDown(UInt32(raw.port_num), name))
            case LOOM_VERBS_EVENT_PORT_UP: events.append(.portUp(UInt32(raw.port_num)))
            case LOOM_VERBS_EVENT_DEVICE_FAILED: events.append(.deviceFailed(name))
            default: continue
            }
        }
        return events
    }

    private static func status(_ completion: loom_verbs_completion) -> VerbsCompletion.Status {
        switch Int(completion.status) {
        case LOOM_VERBS_WC_SUCCESS: .success
        case LOOM_VERBS_WC_FLUSHED: .flushed
        case LOOM_VERBS_WC_REMOTE_ACCESS: .remoteAccessError
        case LOOM_VERBS_WC_RETRY_EXCEEDED, LOOM_VERBS_WC_RNR_RETRY_EXCEEDED: .retryExceeded
        default: .failed("\(String(cString: loom_verbs_status_string(completion.status))) (vendor error \(completion.vendor_err))")
        }
    }

    public func close() {
        state.withLock { state in
            guard state.open else { return }
            state.open = false
            for qp in state.queuePairs.values { loom_verbs_destroy_qp(qp.raw) }
            state.queuePairs = [:]
            loom_verbs_close(handle.raw)
        }
    }

    private func withQueuePair(_ qp: UInt32, _ body: (OpaquePointer) throws(VerbsFailure) -> Void) throws(VerbsFailure) {
        let outcome: Result<Void, VerbsFailure> = state.withLock { state in
            guard state.open, let pointer = state.queuePairs[qp]?.raw else {
                return .failure(VerbsFailure(.fatal("QP \(qp) does not exist (destroyed, or the device is closed)")))
            }
            do throws(VerbsFailure) { try body(pointer) } catch { return .failure(error) }
            return .success(())
        }
        try outcome.get()
    }
}

/// A libibverbs handle (the device context, or a queue pair).
///
/// `@unchecked Sendable`: every use but polling happens under
/// `LibibverbsDevice.state`'s lock, which `close()` also takes to mark the
/// device closed before freeing anything. Polling reads the completion
/// queue outside the lock, from the endpoint's one progress thread, which
/// the endpoint joins before it closes the device; libibverbs allows a poll
/// beside another thread's post or modify.
struct VerbsHandle: @unchecked Sendable {
    let raw: OpaquePointer
}
