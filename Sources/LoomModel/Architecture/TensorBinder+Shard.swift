import LoomKernels

/// A rank's slice of one matrix: some of its rows (output features), some
/// of its columns (input features), or both.
struct MatrixSlice {
    /// Row runs, concatenated in order (one per expert for stacked experts).
    var rows: [Range<Int>]
    var columns: Range<Int>
}

extension TensorBinder {
    /// The slice of `name` this rank holds, copied out of the file mapping
    /// into memory of its own (packed where the kernels have a packed
    /// layout), so a rank keeps only its part of every weight resident.
    func matrix(_ name: String, cols: Int, rows: Int, dims: [Int]? = nil, slice: MatrixSlice) throws -> WeightMatrix {
        let whole = try unpacked(name, cols: cols, rows: rows, dims: dims)
        if slice.rows == [0..<rows] && slice.columns == 0..<cols { return packing.pack(whole) }
        guard let type = GGMLType(rawValue: whole.type) else { preconditionFailure("checked by unpacked(_:)") }
        let columns = slice.columns
        // A cut inside a quantization block cannot be copied as bytes; the
        // slice is then dequantized (exactly) to f32.
        let aligned = columns.lowerBound % type.blockSize == 0 && (columns.upperBound == cols || columns.upperBound % type.blockSize == 0)
        let outType = aligned ? type : .f32
        let rowBytes = outType.bytes(forElements: columns.count)
        let totalRows = slice.rows.reduce(0) { $0 + $1.count }
        let out = packing.allocate(byteCount: max(totalRows * rowBytes, 1))
        var target = out
        for run in slice.rows {
            for row in run {
                let source = whole.data + row * whole.rowBytes
                if aligned {
                    target.copyMemory(from: source + type.bytes(forElements: columns.lowerBound), byteCount: rowBytes)
                } else {
                    copyDequantized(type: whole.type, row: source, cols: cols, columns: columns, into: target)
                }
                target += rowBytes
            }
        }
        packing.release(whole)
        return packing.pack(owned: WeightMatrix(type: outType.rawValue, data: out, rows: totalRows, cols: columns.count))
    }

    private func copyDequantized(type: UInt32, row: UnsafeRawPointer, cols: Int, columns: Range<Int>, into target: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { floats in
            _ = Kernels.dequantize(type: type, source: row, into: floats.baseAddress!, count: cols)
            target.copyMemory(from: floats.baseAddress! + columns.lowerBound, byteCount: columns.count * 4)
        }
    }

    /// A slice of a norm or bias vector.
    func vector(_ name: String, count: Int, range: Range<Int>) throws -> Vector {
        let whole = try vector(name, count: count)
        return range == 0..<count ? whole : Vector(values: Array(whole.values[range]))
    }

    func optionalVector(_ name: String, count: Int, range: Range<Int>) throws -> Vector? {
        file.info(name) == nil ? nil : try vector(name, count: count, range: range)
    }
}

extension GGMLType {
    /// Bytes of `count` elements, rounded up to whole blocks.
    func bytes(forElements count: Int) -> Int {
        (count + blockSize - 1) / blockSize * blockBytes
    }
}

extension TensorShard {
    /// Rows `heads` of a matrix with one `headDim`-row run per head.
    static func rows(_ heads: Range<Int>, headDim: Int) -> Range<Int> {
        heads.lowerBound * headDim..<heads.upperBound * headDim
    }

    /// The same `range` of each of `count` stacked blocks of `stride` rows.
    static func stacked(_ range: Range<Int>, stride: Int, count: Int) -> [Range<Int>] {
        (0..<count).map { e in e * stride + range.lowerBound..<e * stride + range.upperBound }
    }
}
