import Synchronization

/// Long-lived scoped resources (connections, transports), one per key,
/// opened on first use and kept open by a holder task until dropped.
/// Loom's connections are scoped (`withConnection`) so that nothing
/// outlives its owner; this is the owner for the ones a process keeps
/// across requests, such as the router's connections to its workers.
public final class KeptOpen<Key: Hashable & Sendable, Resource: AnyObject & Sendable>: Sendable {
    /// Opens the resource for `key`, calls the body with it, and closes it
    /// when the body returns.
    public typealias Opener = @Sendable (Key, _ body: @Sendable (Resource) async throws -> Void) async throws -> Void

    private struct Entry {
        let resource: Resource
        let holder: Task<Void, Never>
    }

    private let open: Opener
    private let entries = Mutex<[Key: Entry]>([:])

    public init(open: @escaping Opener) {
        self.open = open
    }

    /// Runs `body` with the resource for `key`. If `body` fails with an
    /// error `isBroken` says the resource cannot survive (a closed
    /// connection), the resource is dropped so the next use reopens it;
    /// other errors (a refused request) leave it open for other callers.
    public func withResource<T: Sendable>(
        _ key: Key, isBroken: (Error) -> Bool, _ body: (Resource) async throws -> T
    ) async throws -> T {
        let resource = try await resource(for: key)
        do {
            return try await body(resource)
        } catch {
            if isBroken(error) { drop(key, ifStill: resource) }
            throw error
        }
    }

    public func drop(_ key: Key) {
        entries.withLock { $0.removeValue(forKey: key) }?.holder.cancel()
    }

    public func closeAll() {
        let all = entries.withLock { entries in
            defer { entries.removeAll() }
            return Array(entries.values)
        }
        for entry in all { entry.holder.cancel() }
    }

    private func drop(_ key: Key, ifStill resource: Resource) {
        let entry: Entry? = entries.withLock { entries in
            guard let entry = entries[key], entry.resource === resource else { return nil }
            return entries.removeValue(forKey: key)
        }
        entry?.holder.cancel()
    }

    private func resource(for key: Key) async throws -> Resource {
        if let entry = entries.withLock({ $0[key] }) { return entry.resource }
        let (ready, continuation) = AsyncThrowingStream<Resource, Error>.makeStream()
        let open = open
        let holder = Task {
            do {
                try await open(key) { resource in
                    continuation.yield(resource)
                    // Held until dropped; the opener closes it on return.
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        var iterator = ready.makeAsyncIterator()
        guard let resource = try await iterator.next() else {
            holder.cancel()
            throw WireError(.unavailable, "could not open a connection for \(key)")
        }
        let kept = entries.withLock { entries in
            if let existing = entries[key] { return existing }
            entries[key] = Entry(resource: resource, holder: holder)
            return entries[key]!
        }
        if kept.resource !== resource { holder.cancel() }
        return kept.resource
    }
}
