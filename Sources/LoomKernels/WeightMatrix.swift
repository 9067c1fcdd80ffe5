import CLoomKernels

/// A weight matrix in place in a model file: `rows` rows of `cols` elements,
/// each row `rowBytes` long in ggml type `type`. Multiplying by it computes
/// one output per row, the way ggml lays out `y = W x`.
public struct WeightMatrix: @unchecked Sendable {
    // @unchecked Sendable: `data` points into a read-only file mapping that
    // outlives every model using it (the model holds the mapping), and
    // `packed`, when set, into a `PackedWeights` buffer the model holds the
    // same way, written once before the matrix is built; no code writes
    // through either.
    public let type: UInt32
    public let data: UnsafeRawPointer
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    /// The same matrix in the eight-row layout of `loom_pack`, if any.
    public let packed: UnsafeRawPointer?

    public init(type: UInt32, data: UnsafeRawPointer, rows: Int, cols: Int, packed: UnsafeRawPointer? = nil) {
        let rowBytes = loom_row_bytes(Int32(type), Int64(cols))
        precondition(rowBytes > 0, "unsupported weight type \(type)")
        precondition(packed == nil || loom_can_pack(Int32(type), Int64(rows), Int64(cols)) != 0, "matrix cannot be packed")
        self.type = type
        self.data = data
        self.rows = rows
        self.cols = cols
        self.rowBytes = Int(rowBytes)
        self.packed = packed
    }

    /// True when the eight-row layout exists for this type and shape.
    public var isPackable: Bool { loom_can_pack(Int32(type), Int64(rows), Int64(cols)) != 0 }

    /// This matrix with its packed copy at `packed` (`rows * rowBytes` bytes
    /// filled by `pack(into:)`).
    public func with(packed: UnsafeRawPointer) -> WeightMatrix {
        WeightMatrix(type: type, data: data, rows: rows, cols: cols, packed: packed)
    }

    /// Writes the eight-row layout (`rows * rowBytes` bytes) to `out`.
    public func pack(into out: UnsafeMutableRawPointer) {
        precondition(isPackable, "matrix cannot be packed")
        loom_pack(Int32(type), data, Int64(rows), Int64(cols), out)
    }

    /// The `index`-th of several stacked matrices (the experts of a MoE layer).
    /// A packed group never straddles two slices when `sliceRows` is a
    /// multiple of 8, and packing keeps every row's byte count.
    public func slice(_ index: Int, rows sliceRows: Int) -> WeightMatrix {
        let offset = index * sliceRows * rowBytes
        let packedSlice = sliceRows % 8 == 0 ? packed.map { $0 + offset } : nil
        return WeightMatrix(type: type, data: data + offset, rows: sliceRows, cols: cols, packed: packedSlice)
    }

    /// Dequantizes row `row` into `out` (`cols` floats). A packed matrix
    /// reads its packed copy: the source pages were released, and faulting
    /// one back in maps its neighbours too.
    public func row(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        guard let packed else {
            loom_dequantize_row(Int32(type), data + row * rowBytes, out, Int64(cols))
            return
        }
        withUnsafeTemporaryAllocation(byteCount: rowBytes, alignment: 16) { source in
            loom_unpack_row(Int32(type), packed, Int64(cols), Int64(row), source.baseAddress)
            loom_dequantize_row(Int32(type), source.baseAddress, out, Int64(cols))
        }
    }
}
