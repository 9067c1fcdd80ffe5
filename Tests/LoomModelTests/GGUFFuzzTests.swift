import Foundation
import LoomKernels
import LoomModel
import LoomTesting
import Testing

@Suite("GGUF reader fuzzing")
struct GGUFFuzzTests {
    enum Outcome { case parsed, refused }

    /// Parses a mutated file; a successful parse must be usable: every tensor's
    /// bytes are read and dequantized, so a directory entry that passed
    /// validation but points outside the file would fault here.
    static func check(_ bytes: [UInt8], iteration: Int) -> Outcome? {
        do {
            let file = try Scratch.parse(bytes, name: "fuzz-\(iteration)")
            for info in file.tensors {
                let raw = file.bytes(of: info)
                #expect(raw.count == info.byteCount)
                if info.type.isSupported, info.elementCount <= 1 << 20, let base = raw.baseAddress {
                    _ = Kernels.dequantize(type: info.type.rawValue, source: base, count: info.elementCount)
                }
            }
            _ = file.metadataKeys.compactMap { file.metadata[$0] }
            return .parsed
        } catch is GGUFError {
            return .refused
        } catch {
            Issue.record("iteration \(iteration): not a GGUFError: \(error)")
            return nil
        }
    }

    /// One of several mutations: flipped bits, random bytes, a 64-bit field
    /// set to an extreme (where counts and lengths live), or a cut-off tail.
    static func mutate(_ original: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
        var bytes = original
        let edits = Int.random(in: 1...4, using: &rng)
        for _ in 0..<edits {
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<5:
                bytes[at] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            case 5..<8:
                bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 8:
                let value: UInt64 = [0, 1, .max, 1 << 62, UInt64(Int.max), .random(in: 0...UInt64.max, using: &rng)]
                    .randomElement(using: &rng)!
                if at + 8 <= bytes.count { bytes.patch(value, at: at) }
            default:
                bytes.removeLast(Int.random(in: 0..<min(64, bytes.count), using: &rng))
            }
            if bytes.isEmpty { break }
        }
        return bytes
    }

    @Test("mutated files either parse or throw GGUFError", arguments: [UInt64(1), 2])
    func fuzz(seed: UInt64) throws {
        let original = sampleWriter().bytes()
        var rng = SeededGenerator(seed: seed)
        var parsed = 0, refused = 0
        for iteration in 0..<2000 {
            let bytes = Self.mutate(original, using: &rng)
            switch Self.check(bytes, iteration: iteration) {
            case .parsed: parsed += 1
            case .refused: refused += 1
            case nil: break
            }
        }
        // Both outcomes must occur, or the mutations are not reaching the
        // parser's interesting paths (e.g. tensor data edits always parse).
        #expect(parsed > 100 && refused > 100, "parsed \(parsed), refused \(refused)")
    }
}
