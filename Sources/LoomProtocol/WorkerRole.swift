/// What a member process does in the cluster. Decode requests go to decode
/// and mixed workers; prefill work goes to prefill and mixed workers; a
/// store node (`kvstore`) is never routed a request.
public enum WorkerRole: String, Sendable, Codable, CaseIterable {
    case prefill, decode, mixed, kvstore

    /// The roles a worker (`loom worker`, a config's `workers:`) can take.
    public static let workerRoles: [WorkerRole] = [.prefill, .decode, .mixed]

    /// Roles that can take a request's decode phase (and prefill it locally).
    public static let decodeCapable: Set<WorkerRole> = [.decode, .mixed]
    /// Roles that can prefill a prompt for another worker.
    public static let prefillCapable: Set<WorkerRole> = [.prefill, .mixed]

    /// The role a registration names; nil for one this build does not know.
    public init?(_ wire: Loom_Cluster_Role) {
        switch wire {
        case .prefill: self = .prefill
        case .decode: self = .decode
        case .mixed: self = .mixed
        case .kvstore: self = .kvstore
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    public var wire: Loom_Cluster_Role {
        switch self {
        case .prefill: .prefill
        case .decode: .decode
        case .mixed: .mixed
        case .kvstore: .kvstore
        }
    }
}
