import LoomKernels

/// Copies of a model's Q4_0, Q4_1 and Q8_0 matrices in the eight-row layout the packed
/// kernel reads (`loom_pack`), made once at load. A packed copy is the
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

    /// `matrix` with a packed copy, or unchanged if its type or shape has no
    /// packed layout. The source's pages leave the resident set; the few an
    /// embedding lookup reads fault back in from the file.
    func pack(_ matrix: WeightMatrix) -> WeightMatrix {
        guard matrix.isPackable else { return matrix }
        let count = matrix.rows * matrix.rowBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        matrix.pack(into: buffer)
        buffers.append(buffer)
        mapping.release(UnsafeRawBufferPointer(start: matrix.data, count: count))
        return matrix.with(packed: buffer)
    }

    /// Memory of the model's own, freed with it.
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        buffers.append(buffer)
        return buffer
    }

    /// Drops `matrix`'s pages of the file from the resident set: a rank has
    /// copied out the slice it keeps.
    func release(_ matrix: WeightMatrix) {
        mapping.release(UnsafeRawBufferPointer(start: matrix.data, count: matrix.rows * matrix.rowBytes))
    }

    /// `matrix`, whose data came from `allocate`, packed where it can be. The
    /// unpacked copy is then freed and `data` points at the packed bytes,
    /// which nothing reads as unpacked: the kernels and `row(_:into:)` read
    /// `packed` whenever it is set.
    func pack(owned matrix: WeightMatrix) -> WeightMatrix {
        guard matrix.isPackable else { return matrix }
        let count = matrix.rows * matrix.rowBytes
        let packed = allocate(byteCount: count)
        matrix.pack(into: packed)
        if let index = buffers.firstIndex(of: UnsafeMutableRawPointer(mutating: matrix.data)) {
            buffers.remove(at: index).deallocate()
        }
        return WeightMatrix(type: matrix.type, data: packed, rows: matrix.rows, cols: matrix.cols, packed: packed)
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }
}
