import LoomWire

/// The RPC methods a KV store node serves (workers and tools call them).
/// Block bytes move over the transfer layer, never in these calls.
public enum StoreRPC {
    /// Put, phase one: slots for the blocks the writer offers.
    public static let putReserve = RPCMethod<Loom_Kvstore_PutReserveRequest, Loom_Kvstore_PutReservation>(400)
    /// Put, phase two: after the writes, make the checked blocks visible.
    public static let putCommit = RPCMethod<Loom_Kvstore_PutCommitRequest, Loom_Kvstore_PutCommitResponse>(401)
    /// Lookup and lease, then push the leading run into the caller's blocks.
    public static let get = RPCMethod<Loom_Kvstore_GetRequest, Loom_Kvstore_GetResponse>(402)
    public static let stats = RPCMethod<Loom_Kvstore_Empty, Loom_Kvstore_StoreStats>(403)
    /// Keep a chain's leading run from eviction until a deadline.
    public static let pin = RPCMethod<Loom_Kvstore_PinRequest, Loom_Kvstore_PinResponse>(404)
}
