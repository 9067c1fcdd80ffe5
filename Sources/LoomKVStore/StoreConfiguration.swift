import LoomEngine
import LoomProtocol

/// Which store node this process is, and what it stores.
public struct StoreConfiguration: Sendable {
    public var name: String
    /// Where workers reach this node's RPC (and `tcp` transfer) server.
    public var host: String
    public var port: Int
    /// Blocks the DRAM tier holds.
    public var slots: Int
    /// The model whose blocks this node takes (`BlockHasher.modelID`) and
    /// their layout; anything else is refused.
    public var modelID: UInt64
    public var layout: StoredLayout
    /// How long a put's slots wait for their commit, and a get's lease.
    public var lease: Duration
    /// Where the disk tier keeps its block files, and how much it may use;
    /// nil for a DRAM-only node.
    public var disk: (directory: String, capacityBytes: Int)?
    /// Which blocks leaving DRAM go to disk.
    public var admission: DiskAdmission

    public init(
        name: String, host: String, port: Int, slots: Int, modelID: UInt64, layout: StoredLayout, lease: Duration = .seconds(30),
        disk: (directory: String, capacityBytes: Int)? = nil, admission: DiskAdmission = .afterFirstReuse
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.slots = slots
        self.modelID = modelID
        self.layout = layout
        self.lease = lease
        self.disk = disk
        self.admission = admission
    }

    /// Slots for `mebibytes` of DRAM, at least one.
    public static func slots(dramMiB mebibytes: Int, layout: StoredLayout) -> Int {
        max(1, mebibytes * 1 << 20 / layout.payloadBytes)
    }
}
