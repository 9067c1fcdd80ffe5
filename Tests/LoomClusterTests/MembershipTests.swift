import LoomCluster
import LoomProtocol
import Testing

private let start = ContinuousClock.now
private func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

private let prefill = WorkerID("prefill-0")
private let decode0 = WorkerID("decode-0")
private let decode1 = WorkerID("decode-1")

private func load(_ running: Int, used: Int = 0) -> WorkerLoad {
    WorkerLoad(running: running, waiting: 0, usedBlocks: used, blockCount: 64)
}

/// The code a heartbeat was refused with, nil when it was accepted.
private func refusal(_ heartbeat: () throws -> Void) -> MembershipError.Code? {
    do {
        try heartbeat()
        return nil
    } catch {
        return (error as? MembershipError)?.code
    }
}

/// Three registered workers: a prefill and two decodes, epoch 1, at time 0.
private func cluster() -> Membership {
    var members = Membership()
    for (id, role, port) in [(prefill, WorkerRole.prefill, 7610), (decode0, .decode, 7611), (decode1, .decode, 7612)] {
        members.register(id, role: role, rpcAddress: .tcp(host: "127.0.0.1", port: port), pid: port, epoch: 1, blockCount: 64, at: at(0))
    }
    return members
}

@Suite struct MembershipTests {
    @Test func aliveFiltersByRoleInIdOrder() {
        var members = cluster()
        members.register(WorkerID("mixed-0"), role: .mixed, rpcAddress: .tcp(host: "127.0.0.1", port: 7613), pid: 9, epoch: 1, blockCount: 8, at: at(0))
        #expect(members.alive(roles: WorkerRole.decodeCapable).map(\.id.name) == ["decode-0", "decode-1", "mixed-0"])
        #expect(members.alive(roles: WorkerRole.prefillCapable).map(\.id.name) == ["mixed-0", "prefill-0"])
        #expect(members[WorkerID("mixed-0")]?.load == WorkerLoad(blockCount: 8))
    }

    @Test func aDrainingWorkerGetsNoNewWorkAndLeavesWhenDeregistered() throws {
        var members = cluster()
        try members.heartbeat(decode0, epoch: 1, load: load(2), draining: true, at: at(100))
        #expect(members.alive(roles: WorkerRole.decodeCapable).map(\.id) == [decode1])
        #expect(members[decode0]?.draining == true && members[decode0]?.alive == true, "still listed, still finishing its work")
        #expect(members.remove(decode0, epoch: 2) == nil, "another incarnation's leave is ignored")
        #expect(members.remove(decode0, epoch: 1)?.id == decode0)
        #expect(members[decode0] == nil)
        members.register(decode0, role: .decode, rpcAddress: .tcp(host: "127.0.0.1", port: 7611), pid: 1, epoch: 2, blockCount: 64, at: at(200))
        #expect(members.alive(roles: WorkerRole.decodeCapable).map(\.id) == [decode0, decode1], "a new process starts taking work")
    }

    @Test func silentWorkersExpireOnceAndStayListed() throws {
        var members = cluster()
        try members.heartbeat(decode0, epoch: 1, load: load(3), at: at(2500))
        try members.heartbeat(prefill, epoch: 1, load: load(0), at: at(2500))
        #expect(members.expire(now: at(3000), timeout: .milliseconds(3000)).isEmpty, "exactly the timeout is not late")
        #expect(members.expire(now: at(3001), timeout: .milliseconds(3000)) == [decode1])
        #expect(members.expire(now: at(3002), timeout: .milliseconds(3000)).isEmpty, "a dead worker is reported once")
        #expect(members.expire(now: at(6000), timeout: .milliseconds(3000)) == [decode0, prefill])
        #expect(members.alive(roles: Set(WorkerRole.allCases)).isEmpty)
        let status = members.workers
        #expect(status.map(\.id) == [decode0, decode1, prefill])
        #expect(status.allSatisfy { !$0.alive })
        #expect(status[0].load == load(3), "status keeps the last load reported")
        #expect(status[0].heartbeatAge(at: at(6000)) == .milliseconds(3500))
    }

    @Test func anExpiredWorkerMustRegisterAgain() throws {
        var members = cluster()
        _ = members.expire(now: at(5000), timeout: .seconds(3))
        #expect(refusal { try members.heartbeat(decode0, epoch: 1, load: load(0), at: at(5001)) } == .expired)
        let replaced = members.register(decode0, role: .decode, rpcAddress: .tcp(host: "127.0.0.1", port: 7611), pid: 7611, epoch: 1, blockCount: 64, at: at(5002))
        #expect(!replaced, "the same process came back")
        try members.heartbeat(decode0, epoch: 1, load: load(1), at: at(5003))
        #expect(members.alive(roles: [.decode]).map(\.id) == [decode0])
    }

    @Test func reRegistrationWithANewEpochReplacesTheIncarnation() throws {
        var members = cluster()
        members.recordTransfer(5, from: prefill, to: decode0)
        try members.heartbeat(decode0, epoch: 1, load: load(4, used: 30), at: at(100))
        let repeated = members.register(decode0, role: .decode, rpcAddress: .tcp(host: "127.0.0.1", port: 7611), pid: 7611, epoch: 1, blockCount: 64, at: at(150))
        #expect(!repeated)
        #expect(members[decode0]?.kvBlocksReceived == 5, "a repeated registration keeps the counters")

        let replaced = members.register(decode0, role: .decode, rpcAddress: .tcp(host: "127.0.0.1", port: 7621), pid: 4242, epoch: 2, blockCount: 128, at: at(200))
        #expect(replaced)
        let status = try #require(members[decode0])
        #expect(status.epoch == 2 && status.pid == 4242 && status.rpcAddress == .tcp(host: "127.0.0.1", port: 7621))
        #expect(status.load == WorkerLoad(blockCount: 128), "the new process starts empty")
        #expect(status.kvBlocksReceived == 0 && status.registeredAt == at(200))
        #expect(members[prefill]?.kvBlocksSent == 5)
    }

    @Test func heartbeatsFromAStaleEpochOrUnknownWorkerAreRejected() throws {
        var members = cluster()
        members.register(decode0, role: .decode, rpcAddress: .tcp(host: "127.0.0.1", port: 7611), pid: 2, epoch: 2, blockCount: 64, at: at(100))
        #expect(refusal { try members.heartbeat(decode0, epoch: 1, load: load(9), at: at(200)) } == .staleEpoch)
        #expect(members[decode0]?.load == WorkerLoad(blockCount: 64), "the stale load is not recorded")
        #expect(members[decode0]?.lastHeartbeat == at(100))
        #expect(refusal { try members.heartbeat(WorkerID("ghost"), epoch: 1, load: load(0), at: at(200)) } == .unknownWorker)
    }

    @Test func heartbeatsKeepAWorkerAlive() throws {
        var members = cluster()
        for step in 1...10 {
            try members.heartbeat(decode0, epoch: 1, load: load(step), at: at(step * 500))
            let expired = members.expire(now: at(step * 500), timeout: .seconds(3))
            #expect(!expired.contains(decode0))
        }
        #expect(members.alive(roles: [.decode]).map(\.id) == [decode0])
        #expect(members[decode0]?.load.running == 10)
    }

    @Test func transferCountersIgnoreUnknownWorkers() {
        var members = cluster()
        members.recordTransfer(3, from: prefill, to: decode1)
        members.recordTransfer(2, from: prefill, to: WorkerID("gone"))
        members.recordKVBlocksReceived(7, by: decode1)
        #expect(members[prefill]?.kvBlocksSent == 5)
        #expect(members[decode1]?.kvBlocksReceived == 10)
        #expect(members[WorkerID("gone")] == nil)
    }
}
