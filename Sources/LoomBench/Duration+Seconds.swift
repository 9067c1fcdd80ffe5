extension Duration {
    /// Seconds as a Double; attoseconds make up the fraction.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
