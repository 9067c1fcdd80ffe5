import CLoomKernels

extension Kernels {
    /// CRC-32C of `bytes` (the hardware instruction where there is one).
    /// `portable` forces the table, which tests compare against.
    public static func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0, portable: Bool = false) -> UInt32 {
        loom_crc32c(crc, bytes.baseAddress, bytes.count, portable ? 0 : 1)
    }
}
