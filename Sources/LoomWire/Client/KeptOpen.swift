import Synchronization

/// Long-lived scoped resources (connections, transports), one per key,
/// opened on first use and kept open by a holder task until dropped.
/// Loom's connections are scoped (`withConnection`) so that nothing
/// outlives its owner; this is the owner for the ones a process keeps
/// across requests, such as the router's connections to its workers.
///
/// A dropped resource is closed only once the callers still using it are
/// done, so a shared mapping is never unmapped under a copy in progress.
public final class KeptOpen<Key: Hashable & Sendable, Resource: AnyObject & Sendable>: Sendable {
    /// Opens the resource for `key`, calls the body with it, and closes it
    /// when the body returns.
    public typealias Opener = @Sendable (Key, _ body: @Sendable (Resource) async throws -> Void) async throws -> Void

    /// One opened resource and who is using it.
    private final class Entry: Sendable {
        struct Use {
            var users = 0
            var dropped = false
        }

        let resource: Resource
        let use = Mutex(Use())
        /// Finishing it lets the holder return, which closes the resource.
        let close: AsyncStream<Void>.Continuation

        init(resource: Resource, close: AsyncStream<Void>.Continuation) {
            self.resource = resource
            self.close = close
        }

        func acquire() { use.withLock { $0.users += 1 } }

        func release() {
            let last = use.withLock { use in
                use.users -= 1
                return use.dropped && use.users == 0
            }
            if last { close.finish() }
        }

        func drop() {
            let idle = use.withLock { use in
                use.dropped = true
                return use.users == 0
            }
            if idle { close.finish() }
        }
    }

    private let open: Opener
    private let entries = Mutex<[Key: Entry]>([:])

    public init(open: @escaping Opener) {
        self.open = open
    }

    /// Runs `body` with the resource for `key`. If `body` fails with an
    /// error `isBroken` says the resource cannot survive (a closed
    /// connection), the resource is dropped so the next use reopens it;
    /// other errors (a refused request, a cancelled caller) leave it open
    /// for other callers.
    public func withResource<T: Sendable>(
        _ key: Key, isBroken: (Error) -> Bool, _ body: (Resource) async throws -> T
    ) async throws -> T {
        let entry = try await entry(for: key)
        defer { entry.release() }
        do {
            return try await body(entry.resource)
        } catch {
            if !(error is CancellationError), isBroken(error) { drop(key, ifStill: entry) }
            throw error
        }
    }

    public func drop(_ key: Key) {
        entries.withLock { $0.removeValue(forKey: key) }?.drop()
    }

    public func closeAll() {
        let all = entries.withLock { entries in
            defer { entries.removeAll() }
            return Array(entries.values)
        }
        for entry in all { entry.drop() }
    }

    private func drop(_ key: Key, ifStill entry: Entry) {
        let removed: Entry? = entries.withLock { entries in
            guard entries[key] === entry else { return nil }
            return entries.removeValue(forKey: key)
        }
        removed?.drop()
    }

    /// The entry for `key`, acquired for the caller (released by them).
    private func entry(for key: Key) async throws -> Entry {
        if let entry = entries.withLock({ entries in entries[key].map { $0.acquire(); return $0 } }) { return entry }
        let (ready, readyContinuation) = AsyncThrowingStream<Entry, Error>.makeStream()
        let (closed, close) = AsyncStream<Void>.makeStream()
        let open = open
        Task {
            do {
                try await open(key) { resource in
                    readyContinuation.yield(Entry(resource: resource, close: close))
                    for await _ in closed {}
                }
                readyContinuation.finish()
            } catch {
                readyContinuation.finish(throwing: error)
            }
        }
        var iterator = ready.makeAsyncIterator()
        guard let opened = try await iterator.next() else {
            close.finish()
            throw WireError(.unavailable, "could not open a connection for \(key)")
        }
        let kept = entries.withLock { entries in
            let kept = entries[key] ?? opened
            entries[key] = kept
            kept.acquire()
            return kept
        }
        // Another caller opened one first: ours is closed unused.
        if kept !== opened { opened.drop() }
        return kept
    }
}
