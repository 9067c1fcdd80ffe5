/// A way to reach one peer's registered memory. Implementations: `TCPTransport`
/// here, `FaultInjectingTransport` around any of them in tests.
public protocol TransferTransport: Sendable {
    /// Performs the write; returns once the peer acknowledged it. If the
    /// acknowledgement does not come back the write is reported failed
    /// (`ackLost`), never retried here: it may have landed, and only the
    /// caller knows whether writing it again is safe.
    func write(_ operation: WriteOperation) async throws

    /// Returns once every write this transport acknowledged before the call
    /// is visible at the peer. With acknowledged writes that is immediate;
    /// backends that pipeline writes wait for their completions.
    func barrier() async throws
}

extension TransferTransport {
    public func barrier() async throws {}
}

/// One source, many peers: the same kind of write to each, concurrently.
/// Fails if any peer's write fails, after all have finished.
public func scatter(_ writes: [(any TransferTransport, WriteOperation)]) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for (transport, operation) in writes {
            group.addTask { try await transport.write(operation) }
        }
        try await group.waitForAll()
    }
}
