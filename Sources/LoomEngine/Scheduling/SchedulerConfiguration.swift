import LoomModel

/// The limits one scheduler works within. Validated once when the scheduler
/// is made, so the step loop never has to check them.
public struct SchedulerConfiguration: Sendable {
    /// KV blocks in the worker's pool.
    public var blockCount: Int
    /// Tokens per KV block; must match the KV memory's layout and the hasher.
    public var blockSize: Int
    /// Tokens one step may compute: decodes first, prefill chunks fill the rest.
    public var tokenBudget: Int
    /// Sequences that may hold KV blocks at once (each yields at most one
    /// logit row per step, so the model's logit-row limit bounds this).
    public var maxRunning: Int
    /// Accepted requests that may wait for admission; more are refused.
    /// Preempted sequences go back to the queue even when it is full: they
    /// were accepted already.
    public var maxWaiting: Int
    /// The model's context: prompt plus generated tokens.
    public var contextLength: Int
    /// Names the model in every block hash. The default (model id 0) suits
    /// tests; a worker must key it by its weights, or a router indexing two
    /// models would match one model's prompts to the other's cache.
    public var hasher: BlockHasher
    public var preemption: any PreemptionPolicy

    public init(
        blockCount: Int, blockSize: Int = KVCacheLayout.defaultBlockSize, tokenBudget: Int = 256,
        maxRunning: Int = 16, maxWaiting: Int = 256, contextLength: Int,
        hasher: BlockHasher? = nil, preemption: any PreemptionPolicy = NewestFirstPreemption()
    ) {
        self.blockCount = blockCount
        self.blockSize = blockSize
        self.tokenBudget = tokenBudget
        self.maxRunning = maxRunning
        self.maxWaiting = maxWaiting
        self.contextLength = contextLength
        self.hasher = hasher ?? BlockHasher(modelID: 0, blockSize: blockSize)
        self.preemption = preemption
    }

    func validate() throws(SchedulerError) {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(SchedulerError) {
            if !condition { throw SchedulerError(.invalidConfiguration, message()) }
        }
        try require(blockCount > 0, "blockCount is \(blockCount); the pool needs at least one block")
        try require(blockSize > 0, "blockSize is \(blockSize); a block holds at least one token")
        try require(hasher.blockSize == blockSize, "the hasher hashes blocks of \(hasher.blockSize) tokens but blockSize is \(blockSize); make them equal")
        try require(maxRunning > 0, "maxRunning is \(maxRunning); allow at least one running sequence")
        // Every request passes through the waiting queue, even one that is
        // admitted in the very next step, so 0 would refuse everything.
        try require(maxWaiting > 0, "maxWaiting is \(maxWaiting); allow at least one waiting request")
        try require(contextLength > 0, "contextLength is \(contextLength); it must be positive")
        // Every running sequence decodes one token per step; a budget below
        // maxRunning would have to stall decodes, which the design forbids.
        try require(tokenBudget >= maxRunning, "tokenBudget \(tokenBudget) is below maxRunning \(maxRunning); every running decode needs one token of budget per step")
    }
}
