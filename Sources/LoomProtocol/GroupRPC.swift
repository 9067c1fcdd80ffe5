import LoomWire

/// The one call of a tensor-parallel group: a rank joining its leader at
/// start-up. Everything after that moves through the ranks' regions.
public enum GroupRPC {
    public static let join = RPCMethod<Loom_Group_JoinRequest, Loom_Group_JoinReply>(500)
    public static let kvPool = RPCMethod<Loom_Group_KVPool, Loom_Group_KVPoolReply>(501)
}
