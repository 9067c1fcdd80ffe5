import LoomWire

/// The thin interface the `verbs` backend drives: one opened RDMA device
/// with one protection domain and one completion queue that all its queue
/// pairs share. `LibibverbsDevice` calls libibverbs; tests use a fake.
/// Nothing here has run on RDMA hardware: these machines have none.
///
/// Sendable because callers' tasks post while the endpoint's progress
/// thread polls; libibverbs verbs are thread safe.
public protocol VerbsDevice: AnyObject, Sendable {
    /// How peers reach this device's port (device, port, LID, GID, MTU),
    /// with no queue pair yet: what a HELLO offers.
    var port: Loom_Transfer_VerbsBackendOffer { get }
    /// Entries the shared completion queue holds. Every queue pair's sends
    /// and receives must fit at once: an overrun breaks the whole device.
    var completionQueueDepth: Int { get }

    /// A new RC queue pair in RESET: its number and its starting PSN.
    func createQueuePair(sendQueueDepth: Int, receiveDepth: Int) throws(VerbsFailure) -> (qp: UInt32, psn: UInt32)
    func destroyQueuePair(_ qp: UInt32)

    /// `remote` is the peer's queue pair, needed (only) for RTR.
    func modify(_ qp: UInt32, to state: QueuePairState, remote: Loom_Transfer_VerbsBackendOffer?) throws(VerbsFailure)
    /// Posts one signalled RDMA WRITE (WITH IMM when `immediate` is set).
    func postWrite(_ qp: UInt32, _ request: VerbsWorkRequest) throws(VerbsFailure)
    /// Posts `count` receives, each consumed by one incoming immediate and
    /// completed with `tag` as its work request id.
    func postReceives(_ qp: UInt32, count: Int, tag: UInt64) throws(VerbsFailure)

    /// Registers memory as a write's source, and with `remoteWrite` as a
    /// place peers write into.
    func register(_ memory: UnsafeMutableRawBufferPointer, remoteWrite: Bool) throws(VerbsFailure) -> VerbsMemoryRegistration
    func deregister(_ registration: VerbsMemoryRegistration)

    /// Completions of all queue pairs, at most `max`; waits up to
    /// `waitMilliseconds` when there are none. One thread polls.
    func poll(max: Int, waitMilliseconds: Int32) throws(VerbsFailure) -> [VerbsCompletion]

    /// Asynchronous events pending on the device, without waiting: what
    /// broke outside any work request. Read by the thread that polls.
    func events() throws(VerbsFailure) -> [VerbsEvent]

    /// Frees the device once nothing polls or posts any more.
    func close()
}

/// An asynchronous event the endpoint acts on (libibverbs reports more,
/// such as path migration; those need nothing from Loom).
public enum VerbsEvent: Sendable, Hashable {
    /// A queue pair broke with no work request to say so (QP_FATAL,
    /// QP_REQ_ERR, QP_ACCESS_ERR): the event's name.
    case queuePairFailed(UInt32, String)
    /// A port lost its link: no queue pair on it gets anywhere until it
    /// is back. The port's number, and the event's name.
    case portDown(UInt32, String)
    case portUp(UInt32)
    /// The device is gone for good (DEVICE_FATAL).
    case deviceFailed(String)
}

public enum QueuePairState: Sendable, Hashable {
    case reset, initialized, readyToReceive, readyToSend, error
}

public struct VerbsWorkRequest: Sendable, Hashable {
    /// Receives are posted with ids that have this bit set; completions
    /// that failed carry nothing but the id, so the id alone must say
    /// whether a completion is a write's or a receive's.
    public static let receiveFlag: UInt64 = 1 << 63

    public var id: UInt64
    /// The source bytes, in memory registered with the device (`localKey`).
    public var localAddress: UInt64
    public var localKey: UInt32
    public var remoteAddress: UInt64
    public var remoteKey: UInt32
    public var length: Int
    public var immediate: UInt32?

    public init(id: UInt64, localAddress: UInt64 = 0, localKey: UInt32 = 0, remoteAddress: UInt64, remoteKey: UInt32, length: Int, immediate: UInt32?) {
        precondition(id & Self.receiveFlag == 0, "write ids must leave the receive bit clear")
        self.id = id
        self.localAddress = localAddress
        self.localKey = localKey
        self.remoteAddress = remoteAddress
        self.remoteKey = remoteKey
        self.length = length
        self.immediate = immediate
    }
}

public struct VerbsMemoryRegistration: Sendable, Hashable {
    /// Names the memory as a write's source.
    public var localKey: UInt32
    /// What a peer's RDMA WRITE names (rkey).
    public var remoteKey: UInt32
    /// The device's own handle (an ibv_mr), as an integer.
    public var handle: UInt

    public init(localKey: UInt32, remoteKey: UInt32, handle: UInt) {
        self.localKey = localKey
        self.remoteKey = remoteKey
        self.handle = handle
    }
}

public struct VerbsFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// ENOMEM from ibv_post_send: the send queue is full; retry later.
        case sendQueueFull
        /// Anything else: the QP is unusable.
        case fatal(String)
    }
    public var kind: Kind
    public init(_ kind: Kind) { self.kind = kind }

    public var description: String {
        switch kind {
        case .sendQueueFull: "the send queue is full"
        case .fatal(let message): message
        }
    }
}

/// One entry polled from the completion queue.
public struct VerbsCompletion: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        case success
        /// The peer did not acknowledge in time (or had no receive posted
        /// for that long): it is gone or unreachable.
        case retryExceeded
        /// The peer refused the rkey or the range: a deregistered region.
        case remoteAccessError
        /// The QP went to ERROR with this request still queued.
        case flushed
        case failed(String)
    }

    public var workRequestID: UInt64
    public var status: Status
    /// Which queue pair: one completion queue serves them all.
    public var queuePair: UInt32
    /// The peer's immediate, on a receive consumed by a WRITE WITH IMM.
    public var immediate: UInt32?

    public init(workRequestID: UInt64, status: Status, queuePair: UInt32 = 0, immediate: UInt32? = nil) {
        self.workRequestID = workRequestID
        self.status = status
        self.queuePair = queuePair
        self.immediate = immediate
    }

    public var isReceive: Bool { workRequestID & VerbsWorkRequest.receiveFlag != 0 }
}
