/// The bounds of the histogram of workers' fetches from the KV store: the
/// worker counts into them, the router sums the workers' counts.
public enum FetchLatencyBounds {
    public static let milliseconds: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
}
