import LoomKernels

/// Copies of a model's 4-bit matrices in the eight-row layout the packed
/// kernel reads (`loom_pack_q4`), made once at load. A packed copy is the
/// size of its source, and the source pages are handed back to the kernel
/// once copied, so the model's weights sit in memory once, not twice.
///
/// `@unchecked Sendable`: `buffers` grows only through `pack`, which
/// `ModelWeights.init` calls before the weights are shared with anyone; each
/// buffer is filled before the matrix pointing at it is returned and never
/// written again; `deinit` runs when no model uses the matrices any more.
public final class PackedWeights: @unchecked Sendable {
    private let mapping: MappedFile
    private var buffers: [UnsafeMutableRawPointer] = []

    init(mapping: MappedFile) {
        self.mapping = mapping
    }

    /// Bytes held in packed copies.
    public var byteCount: Int { counted }
    private var counted = 0

    /// `matrix` with a packed copy, or unchanged if its type or shape has no
    /// packed layout. With `releasingSource`, the source's pages leave the
    /// resident set (they fault back in from the file if read again).
    func pack(_ matrix: WeightMatrix, releasingSource: Bool) -> WeightMatrix {
        guard matrix.isPackable else { return matrix }
        let count = matrix.rows * matrix.rowBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        matrix.pack(into: buffer)
        buffers.append(buffer)
        counted += count
        if releasingSource { mapping.release(UnsafeRawBufferPointer(start: matrix.data, count: count)) }
        return matrix.with(packed: buffer)
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }
}
