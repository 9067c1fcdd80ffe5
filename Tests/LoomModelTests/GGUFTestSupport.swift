import Foundation
import LoomModel
import LoomTesting
import Testing

/// GGUFFile reads through a file mapping, so in-memory test files go through
/// a scratch directory. Every file gets a fresh name: a file rewritten in
/// place while an earlier parse still maps it would fault.
enum Scratch {
    /// Memory-backed when the machine has /dev/shm: the truncation and fuzz
    /// tests write thousands of files, and on disk the writeback dominates.
    static let directory: URL = {
        let shm = URL(fileURLWithPath: "/dev/shm")
        let base = FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
        let url = base.appendingPathComponent("loom-gguf-tests")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func path(_ name: String) -> String {
        directory.appendingPathComponent("\(name)-\(UUID().uuidString).gguf").path
    }

    /// Parses `bytes` as a GGUF file named after `name`; the file is removed
    /// afterwards (the mapping keeps the data alive).
    static func parse(_ bytes: [UInt8], name: String = "test") throws -> GGUFFile {
        let path = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try GGUFFile(path: path)
    }
}

/// Runs `body`, which must throw a GGUFError; returns it (nil after
/// recording an issue if it threw something else or nothing).
@discardableResult
func expectGGUFError(
    _ code: GGUFError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> GGUFError? {
    do {
        try body()
        Issue.record("expected GGUFError.\(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as GGUFError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected GGUFError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Equality that tells floats apart by bit pattern, so -0.0, NaN payloads and
/// infinities must survive a round trip exactly.
func identical(_ a: GGUFValue, _ b: GGUFValue) -> Bool {
    switch (a, b) {
    case (.float32(let x), .float32(let y)): return x.bitPattern == y.bitPattern
    case (.float64(let x), .float64(let y)): return x.bitPattern == y.bitPattern
    case (.array(let xs), .array(let ys)):
        return xs.count == ys.count && zip(xs, ys).allSatisfy { identical($0, $1) }
    default: return a == b
    }
}

/// SplitMix64: a tiny seeded generator, so fuzz and quantizer tests see the
/// same inputs on every run and a failure can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Overwrites the little-endian integer at `offset`.
    mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, byte) in raw.enumerated() { self[offset + i] = byte }
        }
    }

    /// Where a tensor's directory entry starts: the offset of its name's
    /// length field. Finds the first occurrence of the length-prefixed name.
    func tensorEntryOffset(_ name: String) -> Int? {
        var needle: [UInt8] = []
        Swift.withUnsafeBytes(of: UInt64(name.utf8.count).littleEndian) { needle.append(contentsOf: $0) }
        needle.append(contentsOf: name.utf8)
        guard count >= needle.count else { return nil }
        return (0...(count - needle.count)).first { self[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

/// Byte offsets of the fields of one tensor directory entry.
struct TensorEntryLayout {
    let rankOffset: Int
    let typeOffset: Int
    let dataOffsetField: Int

    init?(in bytes: [UInt8], name: String, rank: Int) {
        guard let start = bytes.tensorEntryOffset(name) else { return nil }
        rankOffset = start + 8 + name.utf8.count
        typeOffset = rankOffset + 4 + 8 * rank
        dataOffsetField = typeOffset + 4
    }
}
