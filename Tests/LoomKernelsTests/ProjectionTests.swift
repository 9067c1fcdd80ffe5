import CLoomKernels
import LoomKernels
import LoomModel
import LoomTesting
import Testing

/// Several matrices over one input in one pass give, row for row, what one
/// matmul per matrix gives.
@Suite struct ProjectionTests {
    @Test(arguments: [1, 13])
    func groupedMatmulEqualsOnePerMatrix(tokens: Int) {
        let cols = 64, shapes = [24, 8, 40]
        var g = SeededGenerator(seed: UInt64(tokens))
        var buffers: [UnsafeMutableRawPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        func buffer(_ bytes: Int) -> UnsafeMutableRawPointer {
            buffers.append(.allocate(byteCount: bytes, alignment: 64))
            return buffers.last!
        }
        let matrices = shapes.map { rows in
            let bytes = Quantizer.quantize((0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &g) }, as: .q4_1)
            let source = buffer(bytes.count), packed = buffer(bytes.count)
            source.copyMemory(from: bytes, byteCount: bytes.count)
            let m = WeightMatrix(type: GGMLType.q4_1.rawValue, data: source, rows: rows, cols: cols)
            m.pack(into: packed)
            return m.with(packed: packed)
        }
        let x = (0..<(tokens * cols)).map { _ in Float.random(in: -2...2, using: &g) }
        let parallel = Parallel(threads: 2)
        let rounded = buffer(tokens * cols * 8).bindMemory(to: Float.self, capacity: tokens * cols * 2)
        func outputs() -> [UnsafeMutablePointer<Float>] {
            shapes.map { rows in
                let y = buffer(tokens * rows * 4).bindMemory(to: Float.self, capacity: tokens * rows)
                y.initialize(repeating: .nan, count: tokens * rows)
                return y
            }
        }
        let separate = outputs(), grouped = outputs()
        for (m, y) in zip(matrices, separate) {
            Kernels.matmul(m, x, ldx: cols, tokens: tokens, into: y, ldy: m.rows, rounded: rounded, parallel: parallel)
        }
        Kernels.matmul(
            zip(matrices, grouped).map { .init($0, into: $1, ldy: $0.rows) },
            x, ldx: cols, tokens: tokens, rounded: rounded, parallel: parallel)
        for (i, rows) in shapes.enumerated() {
            let a = UnsafeBufferPointer(start: grouped[i], count: tokens * rows)
            let b = UnsafeBufferPointer(start: separate[i], count: tokens * rows)
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
            #expect(!a.contains { $0.isNaN })
        }
    }
}
