import CLoomKernels

/// Pure functions over buffers: the numeric core under the model runtime.
public enum Kernels {
    /// Dequantizes `count` elements of ggml type number `type` from `source`.
    /// Returns nil for a type the kernels cannot read.
    public static func dequantize(type: UInt32, source: UnsafeRawPointer, count: Int) -> [Float]? {
        var out = [Float](repeating: 0, count: count)
        let status = out.withUnsafeMutableBufferPointer {
            loom_dequantize_row(Int32(type), source, $0.baseAddress, Int64(count))
        }
        return status == 0 ? out : nil
    }

    public static func dequantize(type: UInt32, source: UnsafeRawPointer, into destination: UnsafeMutablePointer<Float>, count: Int) -> Bool {
        loom_dequantize_row(Int32(type), source, destination, Int64(count)) == 0
    }

    public static func halfToFloat(_ bits: UInt16) -> Float { loom_f16_to_f32(bits) }
    public static func floatToHalf(_ value: Float) -> UInt16 { loom_f32_to_f16(value) }
}
