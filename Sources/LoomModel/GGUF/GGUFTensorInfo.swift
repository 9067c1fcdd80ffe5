/// Where one tensor lives in a GGUF file and how it is laid out.
public struct GGUFTensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions innermost first, as ggml orders them: a weight matrix with
    /// `dims == [k, n]` has `n` rows of `k` elements each.
    public var dims: [Int]
    public var type: GGMLType
    /// Offset from the start of the tensor data section.
    public var offset: Int

    public var elementCount: Int { dims.reduce(1, *) }
    public var byteCount: Int { type.byteCount(elements: elementCount) }
    public var rowLength: Int { dims.first ?? 1 }
    public var rowCount: Int { elementCount / max(rowLength, 1) }
}
