import LoomModel

/// The plan being built for one step and the token budget it has left.
struct StepBuilder {
    var plan = StepPlan()
    var budget: Int

    mutating func add(_ item: StepPlan.Item) {
        precondition(item.tokens.count <= budget, "a step never exceeds its token budget")
        budget -= item.tokens.count
        plan.items.append(item)
    }

    /// Drops a preempted sequence's item and gives its tokens back.
    mutating func remove(_ id: RequestID) {
        guard let i = plan.items.firstIndex(where: { $0.id == id }) else { return }
        budget += plan.items.remove(at: i).tokens.count
    }
}

extension Scheduler {
    /// Plans the next step: every running decode first, then chunks of
    /// running prefills, then new admissions from the waiting queue, all
    /// within the token budget. May preempt running sequences to free blocks;
    /// they are listed in the plan.
    public mutating func schedule() -> StepPlan {
        precondition(inFlight == nil, "update(_:) the previous plan before scheduling the next")
        var step = StepBuilder(budget: configuration.tokenBudget)
        // Decodes cost one token each and the budget covers maxRunning of
        // them, so a long prompt arriving can shrink prefill chunks but never
        // push a decode out of a step.
        scheduleRunning(&step, decodes: true)
        scheduleRunning(&step, decodes: false)
        // After a preemption the pool is short of blocks; admitting now
        // would only hand the freed blocks to someone who is preempted next.
        if step.plan.preempted.isEmpty { admitWaiting(&step) }
        inFlight = step.plan
        return step.plan
    }

    private mutating func scheduleRunning(_ step: inout StepBuilder, decodes: Bool) {
        let order = running.filter { ($0.remaining == 1) == decodes }.map(\.id)
        for id in order where step.budget > 0 {
            // An earlier sequence in this loop may have preempted this one.
            guard running.contains(where: { $0.id == id }) else { continue }
            guard let count = reserve(id, wanting: decodes ? 1 : step.budget, &step) else { continue }
            let i = running.firstIndex { $0.id == id }!
            step.add(item(for: running[i], count: count))
        }
    }

    /// Grows `id`'s block table for its next chunk of at most `wanting`
    /// tokens, preempting other sequences if no block is free. A chunk is
    /// shortened to the blocks that are free rather than preempting anyone;
    /// preemption only happens when not one token fits. Returns the chunk
    /// length, or nil when `id` itself was chosen to yield.
    private mutating func reserve(_ id: RequestID, wanting: Int, _ step: inout StepBuilder) -> Int? {
        let size = configuration.blockSize
        while true {
            let i = running.firstIndex { $0.id == id }!
            let sequence = running[i]
            let slack = sequence.blockTable.count * size - sequence.computed
            let count = min(sequence.remaining, wanting, slack + pool.freeCount * size)
            if count > 0 {
                let needed = (sequence.computed + count + size - 1) / size - sequence.blockTable.count
                for _ in 0..<max(0, needed) { running[i].blockTable.append(pool.allocate()!) }
                return count
            }
            let victim = configuration.preemption.victim(among: running.map(\.candidate))
            let victimID = running[victim].id
            preempt(at: victim, &step)
            if victimID == id { return nil }
        }
    }

    /// Preemption by recompute: the sequence keeps its tokens and its place
    /// in FCFS order but drops its blocks; the full ones stay in the prefix
    /// cache, so readmission often recomputes only the uncached tail.
    private mutating func preempt(at index: Int, _ step: inout StepBuilder) {
        var sequence = running.remove(at: index)
        step.remove(sequence.id)
        pool.release(sequence.blockTable)
        sequence.blockTable = []
        sequence.computed = 0
        sequence.hashedBlocks = 0
        let at = waiting.firstIndex { $0.arrival > sequence.arrival } ?? waiting.count
        waiting.insert(sequence, at: at)
        step.plan.preempted.append(sequence.id)
        stats.preemptions += 1
    }

    /// Admits waiting requests in FCFS order while budget, running slots and
    /// blocks last. The head is never skipped: a small request behind a big
    /// one waits, which is what FCFS promises.
    private mutating func admitWaiting(_ step: inout StepBuilder) {
        let size = configuration.blockSize
        while step.budget > 0, running.count + reserved.count < configuration.maxRunning, var sequence = waiting.first {
            // The last prompt token is always computed, even on a full hit,
            // because its logits give the first sampled token; capping the
            // hit below it also keeps the block it writes uncached.
            let usable = (sequence.tokens.count - 1) / size
            let hits = pool.cachedPrefix(hashes: sequence.hashes, tokens: sequence.tokens, maxBlocks: usable, in: sequence.request.namespace)
            // Its next block is being computed by a running sequence: wait
            // for it to land in the cache instead of computing it again
            // (a burst of requests sharing a system prompt would otherwise
            // all prefill it at once). A few steps at most.
            if hits.count < usable, isBeingComputed(sequence.hashes[hits.count]) { break }
            let cachedTokens = hits.count * size
            let count = min(sequence.tokens.count - cachedTokens, step.budget)
            let needed = (cachedTokens + count + size - 1) / size - hits.count
            guard pool.allocatableCount(reusing: hits) >= needed else { break }
            waiting.removeFirst()
            pool.acquire(hits)
            sequence.blockTable = hits + (0..<needed).map { _ in pool.allocate()! }
            sequence.computed = cachedTokens
            sequence.hashedBlocks = hits.count
            if sequence.cachedPromptTokens == nil {
                sequence.cachedPromptTokens = min(cachedTokens, sequence.request.prompt.count)
                stats.prefixQueriedTokens += sequence.request.prompt.count
                stats.prefixHitTokens += sequence.cachedPromptTokens!
            }
            step.add(item(for: sequence, count: count))
            let at = running.firstIndex { $0.arrival > sequence.arrival } ?? running.count
            running.insert(sequence, at: at)
        }
    }

    /// True if a running sequence will commit a block with this hash: a
    /// full block of its known tokens that has no hash in the pool yet.
    private func isBeingComputed(_ hash: BlockHash) -> Bool {
        running.contains { $0.hashes[$0.hashedBlocks...].contains(hash) }
    }

    private func item(for sequence: SequenceState, count: Int) -> StepPlan.Item {
        let start = sequence.computed
        precondition(
            pool.hash(of: sequence.blockTable[start / configuration.blockSize]) == nil,
            "a cached block is never written again; \(sequence.id) would write into a hashed block")
        return StepPlan.Item(
            id: sequence.id, tokens: Array(sequence.tokens[start..<start + count]), start: start,
            blockTable: sequence.blockTable, needsLogits: start + count == sequence.tokens.count)
    }
}
