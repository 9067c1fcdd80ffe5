import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomWire

/// Why an operator's cache request could not be done, said so it can be fixed.
public struct CacheAdminError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What a pin did.
public struct PinOutcome: Codable, Sendable, Equatable {
    public var label: String
    /// Full blocks of the prefix (its tokens past the last full block are
    /// not cached anywhere).
    public var blocks: Int
    public var pinned: Int
    /// Whether a worker had to compute the prefix first.
    public var computed: Bool
    public var expiresInSeconds: Int
}

extension ClusterBackend {
    /// Has every live worker forget the cached blocks no request uses;
    /// returns how many each dropped (a worker that failed is left out).
    public func dropWorkerCaches() async -> [String: Int] {
        let workers = state.members { $0 != .kvstore }
        return await withTaskGroup(of: (String, Int?).self) { group in
            for worker in workers {
                group.addTask {
                    let dropped = try? await self.call(worker) { try await $0.unary(ClusterRPC.dropCachedBlocks, Loom_Cluster_Empty(), timeout: .seconds(10)).0 }
                    return (worker.id.name, dropped.map { Int($0.dropped) })
                }
            }
            var dropped: [String: Int] = [:]
            for await (name, count) in group { dropped[name] = count }
            return dropped
        }
    }

    /// Pins `prompt`'s full blocks in the store until now + `ttl`. When the
    /// store nodes do not hold them all, a worker computes the prefix first
    /// (one request of one token), which publishes it.
    public func pin(_ prompt: [TokenID], in namespace: CacheNamespace? = nil, label: String, ttl: Duration) async throws -> PinOutcome {
        let chain = state.settings.hasher.chain(prompt, in: namespace)
        guard !chain.isEmpty else {
            throw CacheAdminError("the prefix is \(prompt.count) tokens, shorter than one block of \(state.settings.hasher.blockSize); nothing to pin")
        }
        let stores = state.members { $0 == .kvstore }
        guard !stores.isEmpty else {
            throw CacheAdminError("no store node is registered, so there is nowhere to pin; add kvstores to the cluster config")
        }
        let computed = !state.storesHold(chain)
        if computed {
            var request = GenerationRequest(prompt: prompt, maxTokens: 1)
            request.cacheNamespace = namespace
            for try await _ in generate(request) {}
            // Workers publish in the background; their events reach the
            // router with their next heartbeats.
            let deadline = ContinuousClock.now + .seconds(15)
            while !state.storesHold(chain) {
                guard ContinuousClock.now < deadline else {
                    throw CacheAdminError("a worker computed the prefix but the store nodes do not hold all of it after 15 s; are the workers started with the store nodes (kvstores in the config, or --kvstore)?")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        var request = Loom_Kvstore_PinRequest()
        request.chain = chain.map(\.rawValue)
        request.ttlMs = UInt32(clamping: ttl.wholeMilliseconds)
        var pinned = 0
        for store in stores {
            let response = try? await call(store) { try await $0.unary(StoreRPC.pin, request, timeout: .seconds(10)).0 }
            pinned += Int(response?.pinned ?? 0)
        }
        state.record(PinRecord(key: chain[chain.count - 1], label: label, blocks: chain.count, pinned: pinned, deadline: .now + ttl))
        return PinOutcome(label: label, blocks: chain.count, pinned: pinned, computed: computed, expiresInSeconds: Int(ttl.components.seconds))
    }
}

extension ClusterState {
    /// Live members whose role passes `filter`, and where to call them.
    func members(_ filter: (WorkerRole) -> Bool) -> [Route.Target] {
        state.withLock { state in
            state.membership.workers.filter { $0.alive && filter($0.role) }.map { Route.Target(id: $0.id, address: $0.rpcAddress) }
        }
    }

    /// Whether every block of `chain` is on some store node.
    func storesHold(_ chain: [BlockHash]) -> Bool {
        state.withLock { state in
            let stores = Set(state.membership.workers.filter { $0.role == .kvstore && $0.alive }.map(\.id))
            return chain.allSatisfy { hash in state.index.holders(of: hash).contains { stores.contains($0) } }
        }
    }

    /// A prefix pinned again replaces its earlier pin: the store nodes
    /// hold it to the new deadline.
    func record(_ pin: PinRecord) {
        state.withLock { state in
            state.pins.removeAll { $0.key == pin.key }
            state.pins.append(pin)
        }
    }
}
