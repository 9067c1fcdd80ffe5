import LoomWire

/// The RPC methods of a Loom cluster. Router methods are served by the
/// router (workers call them); worker methods by every worker.
public enum ClusterRPC {
    public static let register = RPCMethod<Loom_Cluster_RegisterRequest, Loom_Cluster_RegisterResponse>(200)
    public static let heartbeat = RPCMethod<Loom_Cluster_HeartbeatRequest, Loom_Cluster_HeartbeatResponse>(201)
    /// A worker leaving after it drained.
    public static let deregister = RPCMethod<Loom_Cluster_DeregisterRequest, Loom_Cluster_Empty>(202)

    /// Runs a whole request on the worker (prefill and decode); streams `TokenEvent`s.
    public static let generate = RPCMethod<Loom_Cluster_GenerationSpec, Loom_Cluster_TokenEvent>(300)
    /// Decode worker: hold blocks for a prompt another worker prefills.
    public static let reserve = RPCMethod<Loom_Cluster_GenerationSpec, Loom_Cluster_Reservation>(301)
    /// Prefill worker: compute a prompt and write its KV into a reservation.
    public static let prefill = RPCMethod<Loom_Cluster_PrefillRequest, Loom_Cluster_PrefillResponse>(302)
    /// Decode worker: start decoding a filled reservation; streams `TokenEvent`s.
    public static let attach = RPCMethod<Loom_Cluster_AttachRequest, Loom_Cluster_TokenEvent>(303)
    /// Decode worker: drop a reservation whose prefill failed.
    public static let release = RPCMethod<Loom_Cluster_AttachRequest, Loom_Cluster_Empty>(304)
    /// Forget every cached block no request uses (the store keeps its own).
    public static let dropCachedBlocks = RPCMethod<Loom_Cluster_Empty, Loom_Cluster_DropCachedResponse>(305)
}
