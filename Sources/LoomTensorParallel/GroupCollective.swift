import Foundation
import Glibc
import LoomModel
import LoomTransfer

/// One rank's side of a tensor-parallel group: the forward pass's
/// all-reduces, the leader's step plans and the logits gathered to the
/// leader, all as one-sided writes into the peers' registered regions,
/// each followed by its arrival count (the immediate). Peers on this host
/// are written through shared memory, peers on other hosts over a socket
/// (`PeerLink`). The rank's compute thread does the writes and the waiting
/// itself, so a decode-sized all-reduce never leaves that thread: no task,
/// no event loop, no lock.
///
/// Every rank makes the same calls in the same order, so each side knows
/// which message comes next from whom by counting.
public final class GroupCollective: Collective {
    public let members: [GroupMember]
    public let rank: Int
    let own: RegisteredRegion
    let links: [(any PeerLink)?]
    /// The links to peers on other hosts, which this thread reads itself.
    let sockets: SocketProgress
    let layouts: [GroupRegionLayout]
    let vocabularies: [Range<Int>]
    let spin: Duration
    private var sent: [UInt32]
    private var received: [UInt32]
    private var rounds = 0
    private var broken: TensorParallelError?
    /// Where a plan is encoded before it is written to each follower.
    private let plan: UnsafeMutableRawBufferPointer
    /// Time this rank spent waiting on its peers (in-step waits only, not
    /// a follower's wait for the next step): what the group costs it.
    public private(set) var waited: Duration = .zero

    public var size: Int { members.count }
    var layout: GroupRegionLayout { layouts[rank] }
    var base: UnsafeMutableRawPointer { own.bytes.baseAddress! }

    /// `own` is this rank's registered region, laid out by `layouts[rank]`;
    /// `sockets` holds a connection to each peer on another host, and the
    /// peers on this one are mapped from `members`' descriptors.
    init(rank: Int, own: RegisteredRegion, members: [GroupMember], sockets: [Int: LaneSocket], vocabularies: [Range<Int>], layouts: [GroupRegionLayout], spin: Duration) throws {
        self.rank = rank
        self.own = own
        self.members = members
        self.layouts = layouts
        self.vocabularies = vocabularies
        self.spin = spin
        sent = Array(repeating: 0, count: members.count)
        received = Array(repeating: 0, count: members.count)
        // Every socket has its link (which closes it) before a peer's
        // region is mapped, so a region that does not map leaks none.
        let socketLinks = Dictionary(uniqueKeysWithValues: members.compactMap { member in
            sockets[member.rank].map { (member.rank, SocketLink(socket: $0, peer: member, region: own, layout: layouts[rank])) }
        })
        links = try members.map { member -> (any PeerLink)? in
            if member.rank == rank { return nil }
            if let link = socketLinks[member.rank] { return link }
            return try SharedMemoryLink(to: member, layout: layouts[member.rank], source: rank)
        }
        self.sockets = SocketProgress(links.compactMap { $0 as? SocketLink })
        plan = .allocate(byteCount: GroupRegionLayout.planBytes, alignment: 64)
    }

    deinit { plan.deallocate() }

    /// Each peer's health, for a watchdog to poll from its own thread.
    public var health: [PeerHealth] { links.compactMap { $0?.health } }

    // MARK: Collective

    public func allReduce(_ point: SyncPoint, _ values: UnsafeMutableBufferPointer<Float>) throws {
        guard size > 1 else { return }
        var start = 0
        while start < values.count {
            let n = min(layout.reduceFloats, values.count - start)
            try reduceRound(values.baseAddress! + start, count: n, point: point)
            start += n
        }
    }

    public func beginStep(_ batch: ForwardBatch) throws {
        // An empty pass meets at no all-reduce, and the next plan would
        // overwrite this one before a follower read it: send none.
        guard rank == 0, size > 1, batch.count > 0 else { return }
        try broadcast(.step(batch))
    }

    public func abandon(_ error: any Error) {
        guard broken == nil else { return }
        broken = error as? TensorParallelError
            ?? TensorParallelError(.rankLost, "rank \(rank) failed mid-step (\(error)); the ranks no longer agree on what comes next, restart the group")
    }

    public func gatherLogits(_ logits: UnsafeMutablePointer<Float>, rows: Int) throws {
        guard size > 1, rows > 0 else { return }
        let vocabulary = layout.vocabulary
        guard rows <= GroupRegionLayout.logitRows else {
            throw TensorParallelError(.tooLarge, "a step asks for \(rows) logit rows; a group gathers at most \(GroupRegionLayout.logitRows) per step")
        }
        if rank == 0 {
            let slot = (base + layout.logitsOffset).assumingMemoryBound(to: Float.self)
            for source in 1..<size {
                try receive(from: source, what: "its logits")
                copyColumns(vocabularies[source], rows: rows, width: vocabulary, from: slot, to: logits)
            }
        } else {
            let columns = vocabularies[rank]
            for row in 0..<rows {
                let at = row * vocabulary + columns.lowerBound
                links[0]!.write(UnsafeRawBufferPointer(start: logits + at, count: columns.count * 4), at: layouts[0].logitsOffset + at * 4)
            }
            try send(to: 0)
        }
    }

    // MARK: Start-up

    /// As a follower: this rank has loaded its shard, and takes steps.
    public func signalReady() throws {
        guard rank != 0 else { return }
        try send(to: 0)
    }

    /// As the leader: waits (up to `timeout`) until every follower has
    /// loaded its shard, so the first step's all-reduces do not spend
    /// their deadline on a rank still reading a large model.
    func awaitReady(timeout: Duration) throws {
        guard rank == 0 else { return }
        for source in 1..<size {
            try receive(from: source, what: "word that it loaded its shard", deadline: timeout)
        }
        waited = .zero
    }

    // MARK: The leader's plans

    /// As a follower: the leader's next step, or nil when the group ends.
    /// Waits as long as the leader lives: an idle group sends nothing.
    public func nextStep() throws -> ForwardBatch? {
        switch try nextMessage() {
        case .step(let batch): return batch
        case .probe(let count):
            try probe(count)
            return try nextStep()
        case .stop: return nil
        }
    }

    func nextMessage() throws -> StepMessage {
        try receive(from: 0, what: "the next step", deadline: nil)
        let slot = UnsafeRawBufferPointer(start: base + layout.planOffset, count: GroupRegionLayout.planBytes)
        return try StepMessage.decode(slot)
    }

    /// As the leader: ends every follower's loop.
    public func stop() {
        guard rank == 0, broken == nil else { return }
        try? broadcast(.stop)
    }

    /// As the leader: `count` all-reduces of one decode row, with every
    /// rank; returns each one's duration (the group's own latency).
    public func measureAllReduce(count: Int) throws -> [Duration] {
        guard rank == 0, size > 1, count > 0 else { return [] }
        try broadcast(.probe(count))
        return try probe(count)
    }

    @discardableResult
    private func probe(_ count: Int) throws -> [Duration] {
        let row = UnsafeMutableBufferPointer<Float>.allocate(capacity: layout.embedding)
        defer { row.deallocate() }
        let clock = ContinuousClock()
        return try (0..<count).map { i in
            row.initialize(repeating: Float(rank + i))
            return try clock.measure { try allReduce(.attentionOutput(layer: 0), row) }
        }
    }

    private func broadcast(_ message: StepMessage) throws {
        try checkHealthy()
        let length = try message.encode(into: plan)
        for peer in 1..<size {
            links[peer]!.write(UnsafeRawBufferPointer(rebasing: plan[..<length]), at: layouts[peer].planOffset)
            try send(to: peer)
        }
    }

    // MARK: Rounds

    private func reduceRound(_ mine: UnsafeMutablePointer<Float>, count n: Int, point: SyncPoint) throws {
        try checkHealthy()
        let parity = rounds & 1
        rounds += 1
        for peer in 0..<size where peer != rank {
            links[peer]!.write(UnsafeRawBufferPointer(start: mine, count: n * 4), at: layouts[peer].reduceSlotOffset(source: rank, parity: parity))
            try send(to: peer)
        }
        for source in 0..<size where source != rank {
            try receive(from: source, what: "\(point)")
        }
        let slots = (0..<size).map { source in
            UnsafePointer((base + layout.reduceSlotOffset(source: source, parity: parity)).assumingMemoryBound(to: Float.self))
        }
        sumInRankOrder(mine, count: n, slots: slots)
    }

    /// out = ((s0 + s1) + s2) + ... for every element, whichever rank adds:
    /// the same operands in the same order give every rank the same bits.
    private func sumInRankOrder(_ mine: UnsafeMutablePointer<Float>, count n: Int, slots: [UnsafePointer<Float>]) {
        // Ranks 0 and 1 hold an operand of the first sum: one pass reads
        // each element of it before writing the sum over it.
        if rank < 2 {
            let first = rank == 0 ? UnsafePointer(mine) : slots[0], second = rank == 1 ? UnsafePointer(mine) : slots[1]
            for i in 0..<n { mine[i] = first[i] + second[i] }
            for source in slots.dropFirst(2) {
                for i in 0..<n { mine[i] += source[i] }
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { copy in
            var sources = slots
            copy.baseAddress!.update(from: mine, count: n)
            sources[rank] = UnsafePointer(copy.baseAddress!)
            mine.update(from: sources[0], count: n)
            for source in sources.dropFirst() {
                for i in 0..<n { mine[i] += source[i] }
            }
        }
    }

    private func copyColumns(_ columns: Range<Int>, rows: Int, width: Int, from source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>) {
        for row in 0..<rows {
            (target + row * width + columns.lowerBound).update(from: source + row * width + columns.lowerBound, count: columns.count)
        }
    }

    private func send(to peer: Int) throws {
        sent[peer] &+= 1
        do {
            try links[peer]!.post(sent[peer])
        } catch {
            broken = error
            throw error
        }
    }

    /// Waits for `source`'s next message; a peer that died, or that takes
    /// longer than `deadline`, breaks the group for good.
    /// `what` is only built for an error: a decode step waits some sixty
    /// times, and formatting its name each time cost as much as the wait.
    private func receive(from source: Int, what: @autoclosure () -> String, deadline: Duration? = GroupTiming.stepDeadline) throws {
        received[source] &+= 1
        let count = received[source]
        let words = ArrivalWords(base: base, layout: layout)
        let clock = ContinuousClock(), start = clock.now
        defer { if deadline != nil { waited += clock.now - start } }
        // Already there: nothing to check, and no closures to make.
        if words.arrived(from: source, count: count) { return }
        let health = links[source]!.health
        func check() throws {
            if let lost = health.lost() {
                let member = members[source]
                throw TensorParallelError(.rankLost, "rank \(source) (pid \(member.pid) on \(member.host)) \(lost) while rank \(rank) waited for \(what()); restart the group")
            }
            if let deadline, clock.now - start > deadline {
                let member = members[source]
                throw TensorParallelError(.rankLost, "rank \(source) (pid \(member.pid) on \(member.host)) did not send \(what()) within \(deadline); restart the group")
            }
        }
        do {
            if links[source] is SocketLink {
                try waitOnSockets(words, source: source, count: count, check: check)
            } else {
                // Sockets are drained meanwhile too: a peer over tcp may be
                // blocked sending to this rank until it reads.
                try words.wait(from: source, count: count, spin: spin, checkEvery: sockets.isEmpty ? .milliseconds(50) : .milliseconds(1)) {
                    try sockets.drainAll()
                    try check()
                }
            }
        } catch let error as TensorParallelError {
            broken = error
            throw error
        }
    }

    /// Reads every socket while `source`'s message is not in: spinning on
    /// non-blocking reads at first, then sleeping in poll.
    private func waitOnSockets(_ words: ArrivalWords, source: Int, count: UInt32, check: () throws -> Void) throws {
        let clock = ContinuousClock(), spinUntil = clock.now + spin
        let link = links[source] as! SocketLink
        while !words.arrived(from: source, count: count) {
            // Closed after its last frame, and this message was not in it.
            if link.isClosed { try check() }
            if clock.now < spinUntil {
                try sockets.drainAll()
            } else if try !sockets.wait(upTo: .milliseconds(50)) {
                try check()
            }
        }
    }

    private func checkHealthy() throws {
        if let broken { throw broken }
    }
}

/// How long a rank busy-waits before it sleeps, and how long a step may
/// wait on a peer before the group gives up on it.
public struct GroupTiming: Sendable {
    public static let stepDeadline: Duration = .seconds(30)
    /// nil: decided once the group knows how many ranks share this host.
    public var spin: Duration?

    public init(spin: Duration? = nil) {
        self.spin = spin
    }

    /// With a core for every thread of every rank here, a waiting rank
    /// spins for as long as a layer takes (a futex wake-up costs tens of
    /// µs, paid at every one of a step's all-reduces); with fewer, it
    /// sleeps soon, or it would take the core the rank it waits for needs.
    static func spin(ranksHere: Int, threadsPerRank: Int, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> Duration {
        ranksHere * threadsPerRank <= cores ? .milliseconds(2) : .microseconds(20)
    }
}

/// One rank as its peers see it.
public struct GroupMember: Sendable, Equatable {
    public var rank: Int
    public var region: RegionDescriptor
    public var pid: Int32
    public var host: String
    /// Machine and network namespace (`HostIdentity`): ranks with the same
    /// one share memory, the others reach each other over tcp.
    public var hostID: String
    /// Where peers on other hosts connect to this rank. The leader leaves
    /// the host empty: its ranks use the address they joined it at.
    public var dataHost: String
    public var dataPort: Int

    public init(rank: Int, region: RegionDescriptor, pid: Int32, host: String, hostID: String, dataHost: String = "", dataPort: Int = 0) {
        self.rank = rank
        self.region = region
        self.pid = pid
        self.host = host
        self.hostID = hostID
        self.dataHost = dataHost
        self.dataPort = dataPort
    }
}
