/// The thin interface the `verbs` backend drives. The production
/// implementation calls libibverbs (ibv_modify_qp, ibv_post_send with
/// IBV_WR_RDMA_WRITE_WITH_IMM, ibv_post_recv, ibv_poll_cq); tests use a fake.
/// Nothing here has run on RDMA hardware: these machines have none.
public protocol VerbsDevice: AnyObject {
    func modify(_ qp: UInt32, to state: QueuePairState, remote: Loom_Wire_VerbsBackendOffer?) throws(VerbsFailure)
    /// Posts one RDMA WRITE (WITH IMM when `immediate` is set).
    func postWrite(_ qp: UInt32, _ request: VerbsWorkRequest) throws(VerbsFailure)
    func postReceives(_ qp: UInt32, count: Int) throws(VerbsFailure)
}

import LoomWire

public enum QueuePairState: Sendable, Hashable {
    case reset, initialized, readyToReceive, readyToSend, error
}

public struct VerbsWorkRequest: Sendable, Hashable {
    public var id: UInt64
    public var remoteAddress: UInt64
    public var remoteKey: UInt32
    public var length: Int
    public var immediate: UInt32?
}

public struct VerbsFailure: Error, Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// ENOMEM from ibv_post_send: the send queue is full; retry later.
        case sendQueueFull
        /// Anything else: the QP is unusable.
        case fatal(String)
    }
    public var kind: Kind
    public init(_ kind: Kind) { self.kind = kind }
}

/// One entry polled from the completion queue.
public struct VerbsCompletion: Sendable, Hashable {
    public enum Status: Sendable, Hashable { case success, retryExceeded, remoteAccessError, flushed }
    public var workRequestID: UInt64
    public var status: Status
}
