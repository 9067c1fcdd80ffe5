import LoomWire

/// The checks a command line's settings get: the same `Limits` the config
/// loader applies, so `loom router --port` and a config's `port:` agree.
/// The messages name the flags, as the command line is where these come from.
extension RouterConfig {
    /// - Parameter allowingAnyPort: a command line may ask for port 0 (any
    ///   free port); a config names its ports.
    public func validate(allowingAnyPort: Bool) throws(LimitError) {
        let ports = allowingAnyPort ? 0...Limits.ports.upperBound : Limits.ports
        try Limits.check(port, in: ports, "--port")
        try Limits.check(rpcPort, in: ports, "--rpc-port")
        try Limits.check(prefixWeight, in: Limits.prefixWeight, "--prefix-weight")
        try Limits.check(disaggregationThreshold, in: Limits.disaggregationThreshold, "--disaggregation-threshold")
        try Limits.check(heartbeatInterval.wholeMilliseconds, in: Limits.heartbeatIntervalMs, "--heartbeat-interval-ms")
        try Limits.check(heartbeatTimeout.wholeMilliseconds, in: Limits.heartbeatTimeoutMs, "--heartbeat-timeout-ms")
        // A timeout within one interval declares healthy workers dead
        // between two of their heartbeats.
        guard heartbeatTimeout > heartbeatInterval else {
            throw LimitError("--heartbeat-timeout-ms (\(heartbeatTimeout.wholeMilliseconds)) must be longer than --heartbeat-interval-ms (\(heartbeatInterval.wholeMilliseconds))")
        }
    }
}

extension WorkerConfig {
    public func validate(allowingAnyPort: Bool) throws(LimitError) {
        try Limits.check(port, in: allowingAnyPort ? 0...Limits.ports.upperBound : Limits.ports, "--port")
        try Limits.check(threads, in: Limits.threads, "--threads")
        try Limits.check(kvBlocks, in: Limits.kvBlocks, "--kv-blocks")
        try Limits.check(maxRunning, in: Limits.maxRunning, "--max-running")
    }
}
