import CLoomFabric

extension FabricEndpoint: CompletionPoller {
    /// How long a waiting caller reads the completion queue itself before
    /// it parks and leaves the rest to the progress thread. Measured on
    /// loopback tcp;ofi_rxm (64-byte ping-pong, one-way p50): 50 µs was
    /// slower than not polling at all (the spin ran out before the answer
    /// came, then parked anyway), 200 µs cut it by about a fifth, 1 ms was
    /// no better than 200 µs.
    static let pollBudget: Duration = .microseconds(200)

    /// Reads the completion queue on the calling thread until `done()` or
    /// the budget runs out, delivering what it reads as the progress thread
    /// would. A completion read here resolves its waiter on this thread
    /// instead of waking the progress thread to wake the waiter.
    public func poll(until done: () -> Bool) -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + Self.pollBudget
        handoff.callerStartsPolling()
        var finished = false
        defer { handoff.callerStopsPolling(parking: !finished) }
        finished = withUnsafeTemporaryAllocation(of: loom_fabric_completion.self, capacity: 16) { buffer in
            while !done() {
                guard clock.now < end else { return false }
                // Under the handle's lock, so close() cannot free it
                // mid-read; delivered outside it, so posts do not wait on
                // the handlers.
                guard let count = try? withHandle("poll", { handle in loom_fabric_poll(handle, buffer.baseAddress, buffer.count, 0) }) else {
                    return done()
                }
                if count > 0 { deliver(UnsafeBufferPointer(rebasing: buffer[..<count])) }
            }
            return true
        }
        return finished
    }
}
