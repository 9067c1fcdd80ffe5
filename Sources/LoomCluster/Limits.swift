/// The bounds of every setting a process takes, from a config file or a
/// command line alike: one table, so the two can never disagree.
public enum Limits {
    /// Ports a config names (the command line also takes 0: any free port).
    public static let ports = 1...65535
    public static let threads = 1...1024
    /// Ranks of a tensor-parallel worker (the model's query heads bound it too).
    public static let tensorParallel = 1...64
    /// BlockPool indexes blocks with Int32.
    public static let kvBlocks = 1...Int(Int32.max)
    /// Every running decode takes one token of a step's budget
    /// (`Limits.stepTokenBudget`), so no more than that may run.
    public static let maxRunning = 1...stepTokenBudget
    /// Tokens one engine step computes: prefill chunks and decodes together.
    public static let stepTokenBudget = 256
    /// Below 50 ms heartbeats would be most of a worker's RPC traffic.
    public static let heartbeatIntervalMs = 50...60_000
    public static let heartbeatTimeoutMs = 100...600_000
    public static let prefixWeight = 0.0...1_000_000
    public static let disaggregationThreshold = 0...(1 << 20)
    public static let leaseSeconds = 1...3600
    public static let drainSeconds = 0...3600
    /// A store node's DRAM tier, in MiB: at least one block of any model.
    public static let dramMiB = 1...(1 << 20)
    /// A store node's disk tier, in GiB (fractions allowed).
    public static let diskGiB = 0.001...1_048_576.0
    /// Copies of each block on distinct store nodes.
    public static let replicas = 1...8

    /// `value` if it lies in `range`, else an error naming the setting and
    /// the range, as a person would fix it.
    public static func check<Value: Comparable>(_ value: Value, in range: ClosedRange<Value>, _ name: String) throws(LimitError) {
        guard range.contains(value) else { throw LimitError("\(name) must be between \(range.lowerBound) and \(range.upperBound), got \(value)") }
    }
}

public struct LimitError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
