import Foundation
import Glibc
import Logging
import LoomEngine
import LoomProtocol
import Synchronization

/// A store node's disk tier: one file per block in `directory`, holding
/// the block's self-describing header and then its payload, so the tier's
/// index is rebuilt at start-up by reading headers alone. Every read
/// checks the payload against the header's checksum; a block that fails
/// is deleted and reported, never served. Least recently used blocks go
/// when the tier is over its size. A directory that cannot be written, or
/// a disk that fills, leaves the tier as it is and says why in `problem`:
/// the node keeps serving from DRAM.
public final class DiskTier: Sendable {
    public let directory: String
    public let capacityBytes: Int
    let modelID: UInt64
    let layout: StoredLayout
    let logger: Logger
    private let state: Mutex<State>

    struct State {
        /// Each block held, and its last use.
        var blocks: [BlockHash: UInt64] = [:]
        /// Uses in order, oldest first; one that is no longer its block's
        /// last (the block was used again, or is gone) is skipped. Finding
        /// the least recently used block is then amortized O(1), not a sort.
        var uses: [(hash: BlockHash, use: UInt64)] = []
        var oldest = 0
        var clock: UInt64 = 0
        var problem: String?
        /// Writes wait until then after one failed (a full disk may drain).
        var retryAt: ContinuousClock.Instant?
        var writes: UInt64 = 0
        var evictions: UInt64 = 0
        var corrupt: UInt64 = 0

        mutating func touch(_ hash: BlockHash) {
            clock += 1
            blocks[hash] = clock
            uses.append((hash, clock))
            // Stale uses pile up with reads that evict nothing: drop them.
            if uses.count > 4 * blocks.count + 1024 {
                uses = uses[oldest...].filter { blocks[$0.hash] == $0.use }
                oldest = 0
            }
        }

        /// Forgets and returns the least recently used block.
        mutating func removeLeastRecent() -> BlockHash? {
            while oldest < uses.count {
                let (hash, use) = uses[oldest]
                oldest += 1
                if blocks[hash] == use {
                    blocks[hash] = nil
                    return hash
                }
            }
            return nil
        }

        /// A tier that never could write stays read-only; one whose write
        /// failed tries again at `retryAt`.
        func writable(now: ContinuousClock.Instant) -> Bool {
            guard let retryAt else { return problem == nil }
            return retryAt <= now
        }
    }

    /// What the tier holds and has done, for stats.
    public struct Snapshot: Sendable {
        public var blocks: Int
        public var bytes: Int
        public var writes: UInt64
        public var evictions: UInt64
        public var corrupt: UInt64
        public var problem: String?
    }

    /// Opens (creating) `directory` and indexes the blocks in it that
    /// belong to `modelID` and `layout`; files of another model are left
    /// alone, damaged ones removed.
    public init(directory: String, capacityBytes: Int, modelID: UInt64, layout: StoredLayout, logger: Logger) {
        self.directory = directory
        self.capacityBytes = capacityBytes
        self.modelID = modelID
        self.layout = layout
        self.logger = logger
        state = Mutex(State())
        do {
            try Self.createDirectories(directory)
            try Self.probeWritable(directory)
            let found = scan()
            state.withLock { state in for hash in found { state.touch(hash) } }
        } catch {
            let problem = "disk dir \(directory) cannot be written (\(error)); serving from DRAM only"
            state.withLock { $0.problem = problem }
            logger.error("\(problem)")
        }
    }

    var fileBytes: Int { headerBytes + layout.payloadBytes }
    var headerBytes: Int { StoredBlockHeader.fixedBytes + 4 * layout.blockSize }

    public var snapshot: Snapshot {
        state.withLock {
            Snapshot(blocks: $0.blocks.count, bytes: $0.blocks.count * fileBytes, writes: $0.writes, evictions: $0.evictions,
                     corrupt: $0.corrupt, problem: $0.problem)
        }
    }

    public var hashes: [BlockHash] { state.withLock { Array($0.blocks.keys) } }
    public func contains(_ hash: BlockHash) -> Bool { state.withLock { $0.blocks[hash] != nil } }

    /// Writes a block (unless held already); returns the blocks dropped to
    /// make room. A write that fails records why and stores nothing. The
    /// bytes are checked against the header's checksum first (a put does
    /// not read them), so what the disk holds is what the writer sent.
    public func write(_ header: StoredBlockHeader, payload: UnsafeRawBufferPointer) -> [BlockHash] {
        guard state.withLock({ $0.blocks[header.hash] == nil && $0.writable(now: .now) }) else { return [] }
        do throws(StoreError) {
            try header.verify(modelID: modelID, layout: layout, payload: payload)
        } catch {
            state.withLock { $0.corrupt += 1 }
            logger.error("did not write block \(header.hash) to disk: \(error.message)")
            return []
        }
        let dropped = makeRoom()
        do {
            try writeFile(header, payload: payload)
            state.withLock { state in
                state.touch(header.hash)
                state.writes += 1
                state.problem = nil
                state.retryAt = nil
            }
        } catch {
            let problem = "disk dir \(directory): \(error); blocks stay in DRAM only, writes retried every 30 s"
            let first = state.withLock { state in
                defer {
                    state.problem = problem
                    state.retryAt = .now + .seconds(30)
                }
                return state.problem != problem
            }
            if first { logger.error("\(problem)") }
        }
        return dropped
    }

    /// Reads `hash`'s payload into `destination` and returns its header,
    /// checked against name, model, layout and checksum. A block that fails
    /// is deleted (the caller announces it removed).
    public func read(_ hash: BlockHash, into destination: UnsafeMutableRawBufferPointer) throws(StoreError) -> StoredBlockHeader {
        guard state.withLock({ state in
            guard state.blocks[hash] != nil else { return false }
            state.touch(hash)
            return true
        }) else { throw StoreError(.staleLease, "block \(hash) is not on disk") }
        do throws(StoreError) {
            let header = try readFile(hash, into: destination)
            guard header.hash == hash else { throw StoreError(.wrongName, "file \(path(hash)) holds block \(header.hash)") }
            try header.verify(modelID: modelID, layout: layout, payload: UnsafeRawBufferPointer(destination))
            return header
        } catch {
            remove(hash)
            state.withLock { $0.corrupt += 1 }
            logger.error("dropped block \(hash) from disk: \(error.message); workers will compute it again")
            throw error
        }
    }

    public func remove(_ hash: BlockHash) {
        state.withLock { _ = $0.blocks.removeValue(forKey: hash) }
        unlink(path(hash))
    }

    func path(_ hash: BlockHash) -> String {
        directory + "/" + String(format: "%016llx", hash.rawValue) + ".lkvb"
    }

    /// Drops least recently used blocks until one more fits.
    private func makeRoom() -> [BlockHash] {
        let victims: [BlockHash] = state.withLock { state in
            let fit = max(0, capacityBytes / fileBytes - 1)
            var victims: [BlockHash] = []
            while state.blocks.count > fit, let hash = state.removeLeastRecent() { victims.append(hash) }
            state.evictions += UInt64(victims.count)
            return victims
        }
        for hash in victims { unlink(path(hash)) }
        return victims
    }
}

extension DiskTier {
    /// Written under a temporary name and renamed, so a crash mid-write
    /// never leaves a file that looks whole under a block's name.
    fileprivate func writeFile(_ header: StoredBlockHeader, payload: UnsafeRawBufferPointer) throws {
        let final = path(header.hash)
        let temporary = final + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DiskError.system("open \(temporary)", errno) }
        var written = false
        defer {
            close(fd)
            if !written { unlink(temporary) }
        }
        var bytes = header.encoded()
        bytes += Array(repeating: 0, count: headerBytes - bytes.count)
        try Self.writeAll(fd, UnsafeRawBufferPointer(start: bytes, count: bytes.count))
        try Self.writeAll(fd, payload)
        guard rename(temporary, final) == 0 else { throw DiskError.system("rename \(temporary)", errno) }
        written = true
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DiskError.system("write", errno) }
            offset += n
        }
    }

    fileprivate func readFile(_ hash: BlockHash, into destination: UnsafeMutableRawBufferPointer) throws(StoreError) -> StoredBlockHeader {
        let name = path(hash)
        let fd = open(name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError(.corrupt, "block \(hash): cannot open \(name) (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var prefix = [UInt8](repeating: 0, count: headerBytes)
        guard Self.readAll(fd, UnsafeMutableRawBufferPointer(start: &prefix, count: prefix.count), at: 0) == prefix.count else {
            throw StoreError(.corrupt, "block \(hash): \(name) is cut short inside its header")
        }
        let header = try StoredBlockHeader(decoding: prefix)
        guard destination.count == layout.payloadBytes, Self.readAll(fd, destination, at: headerBytes) == destination.count else {
            throw StoreError(.corrupt, "block \(hash): \(name) is cut short inside its payload")
        }
        return header
    }

    private static func readAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        return done
    }

    /// Every block file that holds a block of this model and layout under
    /// its name; files cut short or with a header that does not check out
    /// are removed, files of another model left alone.
    fileprivate func scan() -> [BlockHash] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [BlockHash] = []
        for name in names {
            let full = directory + "/" + name
            if name.hasSuffix(".lkvb.partial") { unlink(full); continue }
            guard name.hasSuffix(".lkvb") else { continue }
            switch header(of: full) {
            case .success(let header) where header.modelID == modelID && header.layout == layout && path(header.hash) == full:
                found.append(header.hash)
            case .success(let header) where header.modelID != modelID || header.layout != layout:
                continue
            default:
                unlink(full)
            }
        }
        return found
    }

    private func header(of file: String) -> Result<StoredBlockHeader, StoreError> {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(StoreError(.corrupt, "cannot open \(file)")) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, Int(status.st_size) == fileBytes else { return .failure(StoreError(.corrupt, "\(file) has the wrong size")) }
        var prefix = [UInt8](repeating: 0, count: headerBytes)
        guard Self.readAll(fd, UnsafeMutableRawBufferPointer(start: &prefix, count: prefix.count), at: 0) == prefix.count else {
            return .failure(StoreError(.corrupt, "\(file) is cut short"))
        }
        do throws(StoreError) {
            let header = try StoredBlockHeader(decoding: prefix)
            // Another model's block is not this tier's to judge.
            if header.modelID == modelID && header.layout == layout { try header.verify(modelID: modelID, layout: layout, payload: nil) }
            return .success(header)
        } catch {
            return .failure(error)
        }
    }

    /// `mkdir -p`, with the system's reason when it fails.
    private static func createDirectories(_ directory: String) throws {
        var path = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            path += "/" + component
            guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw DiskError.system("create \(path)", errno) }
        }
        var status = stat()
        guard stat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { throw DiskError.system("open \(directory)", ENOTDIR) }
    }

    private static func probeWritable(_ directory: String) throws {
        let probe = directory + "/.loom-write-probe"
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DiskError.system("create a file in it", errno) }
        close(fd)
        unlink(probe)
    }
}

enum DiskError: Error, CustomStringConvertible {
    case system(String, Int32)

    var description: String {
        switch self {
        case .system(let what, let code): "\(what): \(String(cString: strerror(code)))"
        }
    }
}
