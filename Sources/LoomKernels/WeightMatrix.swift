import CLoomKernels

/// A weight matrix in place in a model file: `rows` rows of `cols` elements,
/// each row `rowBytes` long in ggml type `type`. Multiplying by it computes
/// one output per row, the way ggml lays out `y = W x`.
public struct WeightMatrix: @unchecked Sendable {
    // @unchecked Sendable: `data` points into a read-only file mapping that
    // outlives every model using it (the model holds the mapping), and no
    // code writes through it.
    public let type: UInt32
    public let data: UnsafeRawPointer
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int

    public init(type: UInt32, data: UnsafeRawPointer, rows: Int, cols: Int) {
        let rowBytes = loom_row_bytes(Int32(type), Int64(cols))
        precondition(rowBytes > 0, "unsupported weight type \(type)")
        self.type = type
        self.data = data
        self.rows = rows
        self.cols = cols
        self.rowBytes = Int(rowBytes)
    }

    /// The `index`-th of several stacked matrices (the experts of a MoE layer).
    public func slice(_ index: Int, rows sliceRows: Int) -> WeightMatrix {
        WeightMatrix(type: type, data: data + index * sliceRows * rowBytes, rows: sliceRows, cols: cols)
    }

    /// Dequantizes row `row` into `out` (`cols` floats).
    public func row(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        loom_dequantize_row(Int32(type), data + row * rowBytes, out, Int64(cols))
    }
}
