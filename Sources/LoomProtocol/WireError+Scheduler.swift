import LoomEngine
import LoomWire

extension WireError {
    /// Scheduler refusals travel as codes 2000 and up, so the router can
    /// answer the client as `loom serve` would (429 for overload, 400 for
    /// a request that does not fit).
    static let schedulerCodeBase: UInt32 = WireError.Space.scheduler.lowerBound
    /// Append only: the index is the wire code.
    static let schedulerCodes: [SchedulerError.Code] = [.overloaded, .contextOverflow, .exceedsKVCapacity, .invalidRequest, .invalidConfiguration, .unavailable]

    public init(_ error: SchedulerError) {
        let index = Self.schedulerCodes.firstIndex(of: error.code) ?? 0
        self.init(Code(rawValue: Self.schedulerCodeBase + 1 + UInt32(index)), error.message)
    }

    /// The scheduler refusal this error carries, if it is one.
    public var schedulerError: SchedulerError? {
        let index = Int(code.rawValue) - Int(Self.schedulerCodeBase) - 1
        guard Self.schedulerCodes.indices.contains(index) else { return nil }
        return SchedulerError(Self.schedulerCodes[index], message)
    }
}
