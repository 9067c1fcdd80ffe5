import Foundation
import LoomModel
@testable import LoomTensorParallel
import LoomTesting
import LoomWire
import Testing

/// Start-up refusals: a rank that does not fit its group is named, with
/// what does not match, on both sides; nobody hangs.
@Suite(.serialized) struct GroupJoinTests {
    static let tiny = GroupForwardTests.spec()

    func leader(size: Int, path: String, timeout: Duration = .seconds(10)) async throws -> GroupLeader {
        let file = try GGUFFile(path: path)
        return try await GroupLeader.listen(
            GroupSpec(size: size, rank: 0, leader: .tcp(host: "127.0.0.1", port: 0), joinTimeout: timeout), file: file,
            split: TensorSplit(file: file, size: size),
            geometry: GroupGeometry(kvBlocks: 4, blockSize: 16, maxBatchTokens: 16, maxLogitRows: 4))
    }

    func join(rank: Int, size: Int, path: String, at leader: RPCAddress, timeout: Duration = .seconds(10)) async throws -> TensorParallelGroup {
        let file = try GGUFFile(path: path)
        return try await TensorParallelGroup.form(
            GroupSpec(size: size, rank: rank, leader: leader, joinTimeout: timeout), file: file, split: TensorSplit(file: file, size: size))
    }

    /// The leader's and the rank's errors, in that order.
    func refusal(leaderSize: Int, leaderPath: String, rank: Int, rankSize: Int, rankPath: String) async throws -> (String, String) {
        let leader = try await leader(size: leaderSize, path: leaderPath)
        async let formed = leader.form()
        var rankError = ""
        do { _ = try await join(rank: rank, size: rankSize, path: rankPath, at: leader.address) } catch { rankError = "\(error)" }
        var leaderError = ""
        do { _ = try await formed } catch { leaderError = "\(error)" }
        return (leaderError, rankError)
    }

    @Test func aRankWithAnotherGroupSizeIsRefusedByName() async throws {
        let path = try Self.tiny.write(to: temporaryPath("join.gguf"))
        let (leader, rank) = try await refusal(leaderSize: 2, leaderPath: path, rank: 1, rankSize: 3, rankPath: path)
        #expect(leader.contains("rank 1 (pid \(getpid())") && leader.contains("--tp-size 3 but the leader with 2"), "\(leader)")
        #expect(rank.contains("refused rank 1") && rank.contains("--tp-size 3 but the leader with 2"), "\(rank)")
    }

    @Test func aRankWithAnotherModelIsRefusedNamingBothFiles() async throws {
        let path = try Self.tiny.write(to: temporaryPath("join-a.gguf"))
        var other = Self.tiny
        other.seed = 9
        other.feedForward = 256
        let otherPath = try other.write(to: temporaryPath("join-b.gguf"))
        let (leader, rank) = try await refusal(leaderSize: 2, leaderPath: path, rank: 1, rankSize: 2, rankPath: otherPath)
        #expect(leader.contains("join-b.gguf") && leader.contains("join-a.gguf") && leader.contains("same --model"), "\(leader)")
        #expect(rank.contains("refused rank 1"), "\(rank)")
    }

    @Test func aRankOutsideTheGroupOrTwiceIsRefused() async throws {
        let path = try Self.tiny.write(to: temporaryPath("join-rank.gguf"))
        let (leader, _) = try await refusal(leaderSize: 2, leaderPath: path, rank: 0, rankSize: 2, rankPath: path)
        #expect(leader.contains("rank 0 is not in 1..<2"), "\(leader)")
    }

    @Test func aRankThatNeverJoinsFailsTheLeaderNamingIt() async throws {
        let path = try Self.tiny.write(to: temporaryPath("join-late.gguf"))
        let leader = try await leader(size: 3, path: path, timeout: .seconds(6))
        let address = leader.address
        let second = Task { try await join(rank: 1, size: 3, path: path, at: address) }
        let error = await #expect(throws: TensorParallelError.self) { try await leader.form() }
        #expect(error?.code == .joinTimeout)
        #expect(error?.message.contains("rank 2 of 3 never joined") == true, "\(String(describing: error))")
        await #expect(throws: (any Error).self, "the rank that did join is told too") { _ = try await second.value }
    }

    /// The group is formed once every rank has loaded its shard, not when
    /// it has joined: a rank still loading (or stuck) holds the leader at
    /// start-up, within its timeout, instead of failing its first steps.
    @Test func aRankThatJoinsButNeverLoadsFailsTheLeaderNamingIt() async throws {
        let path = try Self.tiny.write(to: temporaryPath("join-load.gguf"))
        let leader = try await leader(size: 2, path: path, timeout: .seconds(2))
        let address = leader.address
        let joined = Task { try await join(rank: 1, size: 2, path: path, at: address) }
        let error = await #expect(throws: TensorParallelError.self) { try await leader.form() }
        #expect(error?.message.contains("rank 1 (pid \(getpid())") == true && error?.message.contains("did not send word that it loaded its shard") == true,
                "\(String(describing: error))")
        _ = try await joined.value
    }

    @Test func aRankWithNoLeaderGivesUpNamingTheAddress() async throws {
        let path = try Self.tiny.write(to: temporaryPath("join-alone.gguf"))
        let nowhere = RPCAddress.tcp(host: "127.0.0.1", port: freePort())
        let error = await #expect(throws: TensorParallelError.self) {
            try await join(rank: 1, size: 2, path: path, at: nowhere, timeout: .milliseconds(800))
        }
        #expect(error?.code == .joinTimeout)
        #expect(error?.message.contains("could not join the leader at \(nowhere.hostPort)") == true, "\(String(describing: error))")
    }
}

/// The leader's step plans as the follower reads them, and what it does
/// with a plan slot that does not hold one.
@Suite struct StepCodecTests {
    func roundTrip(_ message: StepMessage) throws -> StepMessage {
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { slot.deallocate() }
        _ = try message.encode(into: slot)
        return try StepMessage.decode(UnsafeRawBufferPointer(slot))
    }

    @Test func stepsProbesAndStopsComeBackAsSent() throws {
        var batch = ForwardBatch()
        batch.append(tokens: [5, 6, 7], startingAt: 0, blockTable: [3, 1])
        batch.append(tokens: [9], startingAt: 40, blockTable: [0, 2, 4], logits: .all)
        #expect(try roundTrip(.step(batch)) == .step(batch))
        // Targets of every length, so the padding of the last word is crossed.
        for length in 0..<6 {
            batch.exports = [BlockExport(firstBlock: 2, blocks: [4, 0], target: (0..<length).map { UInt8(200 + $0) }, millisecondsLeft: 24_000),
                             BlockExport(firstBlock: 0, blocks: [7], target: [1], millisecondsLeft: 0)]
            #expect(try roundTrip(.step(batch)) == .step(batch))
        }
        // A prompt's last chunk after a long cached prefix: its first block
        // is far larger than the words left in the message.
        batch.exports = [BlockExport(firstBlock: 5_000, blocks: [1], target: [9], millisecondsLeft: 100)]
        #expect(try roundTrip(.step(batch)) == .step(batch))
        #expect(try roundTrip(.probe(17)) == .probe(17))
        #expect(try roundTrip(.stop) == .stop)
    }

    @Test func aStepLargerThanTheSlotIsRefusedBeforeAnythingIsWritten() throws {
        var batch = ForwardBatch()
        batch.append(tokens: Array(repeating: 1, count: 400), startingAt: 0, blockTable: [0])
        let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 8)
        defer { slot.deallocate() }
        #expect(throws: TensorParallelError.self) { _ = try StepMessage.step(batch).encode(into: slot) }
    }

    @Test func aMalformedSlotIsAnErrorNotACrash() throws {
        func decode(_ words: [Int32]) -> TensorParallelError? {
            words.withUnsafeBytes { bytes in
                do { _ = try StepMessage.decode(bytes); return nil } catch { return error as? TensorParallelError }
            }
        }
        #expect(decode([9, 0])?.message.contains("unknown step kind 9") == true)
        #expect(decode([1, 1000, 0])?.code == .invalidMessage, "a length past the slot")
        #expect(decode([1, 3, 5, 0, 0])?.code == .invalidMessage, "5 tokens named, none there")
        #expect(decode([1, 6, 1, 1, 0, 7, 0, 0])?.code == .invalidMessage, "a sequence whose block table is cut off")
        #expect(decode([1, 12, 1, 1, 0, 7, 0, 0, 0, 1, 0, 10, 0, 9])?.code == .invalidMessage, "an export whose 9 target bytes are not there")
        #expect(decode([1, 12, 1, 1, 0, 7, 0, 0, 0, 1, 0, 10, 0, -1])?.code == .invalidMessage, "a negative byte count")
        #expect(decode([1, 12, 1, 1, 0, 7, 0, 0, 0, 1, -3, 10, 0, 0])?.code == .invalidMessage, "a negative first block")
    }
}
