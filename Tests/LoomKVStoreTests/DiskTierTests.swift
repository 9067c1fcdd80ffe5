import Foundation
import LoomEngine
import LoomModel
import LoomProtocol
import Logging
import Testing
@testable import LoomKVStore

/// A fresh folder under /tmp, removed by `clean`.
struct ScratchDir {
    let path = FileManager.default.temporaryDirectory.path + "/loom-disk-\(UInt64.random(in: 0...UInt64.max))"
    func clean() { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("KV store: the disk tier's files")
struct DiskTierTests {
    let layout = StoredLayout(layers: 2, kvHeads: 1, headDim: 8, blockSize: 4)
    let modelID: UInt64 = 0x5EED
    var hasher: BlockHasher { BlockHasher(modelID: modelID, blockSize: 4) }

    func tier(_ dir: String, capacity: Int = 1 << 20, model: UInt64? = nil) -> DiskTier {
        DiskTier(directory: dir, capacityBytes: capacity, modelID: model ?? modelID, layout: layout, logger: Logger(label: "test"))
    }

    func block(_ i: Int, model: UInt64? = nil) -> (StoredBlockHeader, [UInt8]) {
        let bytes = (0..<layout.payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
        let tokens = (0..<4).map { TokenID(i * 4 + $0) }
        let hasher = BlockHasher(modelID: model ?? modelID, blockSize: 4)
        let header = bytes.withUnsafeBytes {
            StoredBlockHeader(hash: hasher.hash(parent: nil, tokens: tokens), parent: nil, modelID: model ?? modelID, layout: layout, tokens: tokens, payload: $0)
        }
        return (header, bytes)
    }

    func readBack(_ tier: DiskTier, _ hash: BlockHash) throws(StoreError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: layout.payloadBytes)
        let header = out.withUnsafeMutableBytes { buffer in Result { () throws(StoreError) in try tier.read(hash, into: buffer) } }
        #expect(try header.get().hash == hash)
        return out
    }

    @Test func aBlockWrittenIsReadBackWholeAndFoundAgainByANewTierOverTheFolder() throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let (header, bytes) = block(1)
        let first = tier(dir.path)
        #expect(bytes.withUnsafeBytes { first.write(header, payload: $0) }.isEmpty)
        #expect(try readBack(first, header.hash) == bytes)
        // Another model's block in the same folder, and a file cut short.
        let (other, otherBytes) = block(2, model: 0xBEEF)
        _ = otherBytes.withUnsafeBytes { tier(dir.path, model: 0xBEEF).write(other, payload: $0) }
        let (cut, cutBytes) = block(3)
        _ = cutBytes.withUnsafeBytes { first.write(cut, payload: $0) }
        let cutPath = first.path(cut.hash)
        try FileHandle(forWritingAtPath: cutPath).map { try $0.truncate(atOffset: 100); try $0.close() }

        let restarted = tier(dir.path)
        #expect(restarted.hashes == [header.hash], "the index is rebuilt from headers; the other model's and the cut file are not served")
        #expect(try readBack(restarted, header.hash) == bytes)
        #expect(!FileManager.default.fileExists(atPath: cutPath), "a file cut short is removed at the scan")
        #expect(FileManager.default.fileExists(atPath: restarted.path(other.hash)), "another model's block is left alone")
    }

    @Test func aFlippedByteFailsTheChecksumAndTheBlockIsDropped() throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let disk = tier(dir.path)
        let (header, bytes) = block(1)
        _ = bytes.withUnsafeBytes { disk.write(header, payload: $0) }
        let file = disk.path(header.hash)
        var contents = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        contents[contents.count - 5] ^= 0x40
        try Data(contents).write(to: URL(fileURLWithPath: file))
        #expect(throws: StoreError.self) { try readBack(disk, header.hash) }
        #expect(!disk.contains(header.hash) && !FileManager.default.fileExists(atPath: file))
        #expect(disk.snapshot.corrupt == 1)
    }

    @Test func overItsSizeTheLeastRecentlyUsedBlocksGo() throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        let probe = tier(dir.path)
        let disk = tier(dir.path, capacity: 3 * probe.fileBytes)
        let blocks = (1...4).map { block($0) }
        for (header, bytes) in blocks.prefix(3) { #expect(bytes.withUnsafeBytes { disk.write(header, payload: $0) }.isEmpty) }
        _ = try readBack(disk, blocks[0].0.hash)
        let dropped = blocks[3].1.withUnsafeBytes { disk.write(blocks[3].0, payload: $0) }
        #expect(dropped == [blocks[1].0.hash], "block 2 was used least recently (block 1 was read)")
        #expect(Set(disk.hashes) == Set([blocks[0], blocks[2], blocks[3]].map(\.0.hash)))
    }

    @Test func aFolderThatCannotBeWrittenLeavesTheTierEmptyAndSaysWhy() throws {
        let dir = ScratchDir()
        defer { dir.clean() }
        // A regular file where the folder should be.
        FileManager.default.createFile(atPath: dir.path, contents: Data("not a folder".utf8))
        let disk = tier(dir.path + "/blocks")
        let (header, bytes) = block(1)
        _ = bytes.withUnsafeBytes { disk.write(header, payload: $0) }
        #expect(disk.snapshot.blocks == 0)
        let problem = try #require(disk.snapshot.problem)
        #expect(problem.contains("cannot be written") && problem.contains("serving from DRAM only"))
    }
}
