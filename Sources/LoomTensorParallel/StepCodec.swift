import LoomModel

/// What the leader puts in a follower's plan slot: the next pass, or the
/// end of the group. Little-endian 32-bit words: kind, payload length,
/// then for a step the token, sequence and logit-row counts, the tokens,
/// positions and sequence indices, the logit rows, each sequence's block
/// table with its length first, and the blocks to export (first block,
/// milliseconds left, pool blocks, then the target's bytes, each with its
/// length first).
enum StepMessage: Equatable {
    case step(ForwardBatch)
    /// `count` all-reduces of one row, to measure the group's latency.
    case probe(Int)
    case stop

    static let stepKind: Int32 = 1, stopKind: Int32 = 2, probeKind: Int32 = 3

    func encode(into out: UnsafeMutableRawBufferPointer) throws -> Int {
        var words: [Int32]
        switch self {
        case .stop:
            words = [Self.stopKind, 0]
        case .probe(let count):
            words = [Self.probeKind, 1, Int32(count)]
        case .step(let batch):
            words = [Self.stepKind, 0, Int32(batch.count), Int32(batch.sequences.count), Int32(batch.logitRows.count)]
            words += batch.tokens + batch.positions + batch.sequenceIndex + batch.logitRows.map { Int32($0) }
            for sequence in batch.sequences { words += [Int32(sequence.blockTable.count)] + sequence.blockTable }
            words.append(Int32(batch.exports.count))
            for export in batch.exports {
                words += [Int32(export.firstBlock), Int32(clamping: export.millisecondsLeft), Int32(export.blocks.count)] + export.blocks + [Int32(export.target.count)]
                words += Self.packed(export.target)
            }
            words[1] = Int32(words.count - 2)
        }
        let bytes = words.count * 4
        guard bytes <= out.count else {
            throw TensorParallelError(.tooLarge, "a step of \(bytes) bytes does not fit the group's \(out.count)-byte plan slot; schedule fewer tokens or sequences per step")
        }
        words.withUnsafeBytes { out.copyMemory(from: $0) }
        return bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> StepMessage {
        var reader = WordReader(bytes: bytes)
        let kind = try reader.next(), length = try reader.next()
        guard length >= 0, (Int(length) + 2) * 4 <= bytes.count else {
            throw TensorParallelError(.invalidMessage, "a step claims \(length) words but the plan slot holds \(bytes.count / 4 - 2)")
        }
        reader.limit = Int(length) + 2
        switch kind {
        case stopKind: return .stop
        case probeKind: return .probe(Int(max(1, try reader.next())))
        case stepKind: return .step(try batch(&reader))
        default: throw TensorParallelError(.invalidMessage, "unknown step kind \(kind) in the plan slot")
        }
    }

    private static func batch(_ reader: inout WordReader) throws -> ForwardBatch {
        let tokens = try reader.count(), sequences = try reader.count(), logits = try reader.count()
        var batch = ForwardBatch()
        batch.tokens = try reader.words(tokens)
        batch.positions = try reader.words(tokens)
        batch.sequenceIndex = try reader.words(tokens)
        batch.logitRows = try reader.words(logits).map { Int($0) }
        for _ in 0..<sequences {
            batch.sequences.append(.init(blockTable: try reader.words(try reader.count())))
        }
        for _ in 0..<(try reader.count()) {
            // An index and a time, not lengths: only their sign is checked.
            let first = try reader.nonNegative(), left = try reader.nonNegative()
            let blocks = try reader.words(try reader.count())
            batch.exports.append(BlockExport(firstBlock: first, blocks: blocks, target: try reader.bytes(try reader.byteCount()), millisecondsLeft: left))
        }
        return batch
    }

    /// Bytes as little-endian words, the last one zero-padded.
    private static func packed(_ bytes: [UInt8]) -> [Int32] {
        var words = [Int32](repeating: 0, count: (bytes.count + 3) / 4)
        words.withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
        return words
    }
}

/// Reads words and refuses to run past the message.
struct WordReader {
    let bytes: UnsafeRawBufferPointer
    var index = 0
    var limit: Int

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.limit = bytes.count / 4
    }

    mutating func next() throws -> Int32 {
        guard index < limit else { throw TensorParallelError(.invalidMessage, "a step ends after \(index) words, in the middle of its fields") }
        defer { index += 1 }
        return bytes.loadUnaligned(fromByteOffset: index * 4, as: Int32.self)
    }

    mutating func count() throws -> Int {
        let value = try next()
        guard value >= 0, Int(value) <= limit - index else {
            throw TensorParallelError(.invalidMessage, "a step names \(value) entries where \(limit - index) words remain")
        }
        return Int(value)
    }

    mutating func nonNegative() throws -> Int {
        let value = try next()
        guard value >= 0 else { throw TensorParallelError(.invalidMessage, "a step names \(value) where a block or a time was due") }
        return Int(value)
    }

    /// A length in bytes, of bytes that follow as words.
    mutating func byteCount() throws -> Int {
        let value = try next()
        guard value >= 0, (Int(value) + 3) / 4 <= limit - index else {
            throw TensorParallelError(.invalidMessage, "a step names \(value) bytes where \(limit - index) words remain")
        }
        return Int(value)
    }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        let words = (n + 3) / 4
        guard words <= limit - index else { throw TensorParallelError(.invalidMessage, "a step names \(n) bytes where \(limit - index) words remain") }
        defer { index += words }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[(index * 4)..<(index * 4 + n)]))
    }

    mutating func words(_ n: Int) throws -> [Int32] {
        guard n <= limit - index else { throw TensorParallelError(.invalidMessage, "a step names \(n) entries where \(limit - index) words remain") }
        defer { index += n }
        return (0..<n).map { bytes.loadUnaligned(fromByteOffset: (index + $0) * 4, as: Int32.self) }
    }
}
