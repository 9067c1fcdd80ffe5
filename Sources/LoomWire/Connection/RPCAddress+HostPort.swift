extension RPCAddress {
    /// Parses `host:port` as command lines and configs write it (the last
    /// colon splits, so IPv6 hosts in brackets work). Nil for anything else,
    /// a port outside 0...65535 included.
    public init?(hostPort: String) {
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self = .tcp(host: host, port: port)
    }

    /// `host:port` (IPv6 hosts in brackets), or the socket path: what a
    /// person reads on a status page and types back into a command line.
    public var hostPort: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): path
        }
    }
}
