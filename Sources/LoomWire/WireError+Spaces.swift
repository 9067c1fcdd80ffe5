extension WireError {
    /// Error codes the layers above the RPC send through it. LoomWire only
    /// reserves the ranges, so no two layers' codes collide and a caller can
    /// tell which layer failed without linking it (the router reads
    /// transfer failures without the transfer engine).
    public enum Space {
        /// LoomTransfer's `TransferError`: the lower bound + its code.
        public static let transfer: Range<UInt32> = 1000..<2000
        /// The engine's `SchedulerError` refusals (LoomProtocol).
        public static let scheduler: Range<UInt32> = 2000..<3000
    }
}
