#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connected TCP socket with blocking, whole-buffer I/O, for a lane's
/// own thread. Every call either moves all its bytes or throws: a lane has
/// no use for half a header. Public for the tensor-parallel group's links,
/// which run their own frames over the same sockets.
public struct LaneSocket: Sendable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    /// Connects to `host:port` (numeric or a name), Nagle off. With a
    /// `timeout`, gives up after it: a host whose firewall drops the SYNs
    /// would otherwise hold the caller for the kernel's two minutes of
    /// retries.
    public static func connect(host: String, port: Int, timeout: Duration? = nil) throws(TransferError) -> LaneSocket {
        try withAddresses(host: host, port: port, passive: false) { (info) throws(TransferError) in
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, 0)
            guard fd >= 0 else { throw Self.failure("socket", errno) }
            let flags = fcntl(fd, F_GETFL)
            if timeout != nil { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
            var code: Int32 = 0
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
                code = errno
                if code == EINPROGRESS, let timeout {
                    var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let milliseconds = Int32(clamping: max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
                    if poll(&poller, 1, milliseconds) == 1 {
                        var length = socklen_t(MemoryLayout<Int32>.size)
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                    } else {
                        code = ETIMEDOUT
                    }
                }
            }
            guard code == 0 else {
                Glibc.close(fd)
                throw TransferError(.peerUnavailable, "cannot open a tcp data lane to \(host):\(port): \(String(cString: strerror(code)))")
            }
            _ = fcntl(fd, F_SETFL, flags)
            let socket = LaneSocket(fd: fd)
            socket.tune()
            return socket
        }
    }

    /// Nagle off: a part's header must not wait for its bytes' ACK. (SIGPIPE
    /// is kept off per call, by `send`'s MSG_NOSIGNAL.)
    public func tune() {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends all of `bytes`; `more` tells the kernel more of the same
    /// message follows, so a header and a small payload share a segment.
    public func send(_ bytes: UnsafeRawBufferPointer, more: Bool = false) throws(TransferError) {
        var sent = 0
        let flags = Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0)
        while sent < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + sent, bytes.count - sent, flags)
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("send", errno)
            }
            sent += n
        }
    }

    public func send(_ bytes: [UInt8], more: Bool = false) throws(TransferError) {
        try bytes.withUnsafeBytes { bytes in Result { () throws(TransferError) in try send(bytes, more: more) } }.get()
    }

    func receive(count: Int) throws(TransferError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { buffer in Result { () throws(TransferError) in try receive(into: buffer) } }.get()
        return bytes
    }

    /// Fills all of `buffer`; a peer that closes first is `peerUnavailable`.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(TransferError) {
        var filled = 0
        while filled < buffer.count {
            let n = recv(fd, buffer.baseAddress! + filled, buffer.count - filled, Int32(MSG_WAITALL))
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("recv", errno)
            }
            if n == 0 { throw TransferError(.peerUnavailable, "the tcp data lane was closed by the peer") }
            filled += n
        }
    }

    /// Reads and drops `count` bytes: a refused or duplicate part's payload.
    func discard(_ count: Int) throws(TransferError) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: min(count, 1 << 16), alignment: 16)
        defer { scratch.deallocate() }
        var left = count
        while left > 0 {
            let chunk = min(left, scratch.count)
            try receive(into: UnsafeMutableRawBufferPointer(rebasing: scratch[..<chunk]))
            left -= chunk
        }
    }

    /// Waits up to `milliseconds` for bytes to read (or the peer closing).
    public func readable(within milliseconds: Int32) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&poller, 1, milliseconds) > 0
    }

    /// Wakes any thread blocked on this socket; `close` comes after they return.
    public func shutDown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    public func close() { _ = Glibc.close(fd) }

    /// A bound on each blocking receive (SO_RCVTIMEO; nil: none): a peer
    /// that never speaks fails the call with EAGAIN instead of hanging it.
    public func setReceiveTimeout(_ duration: Duration?) {
        let duration = duration ?? .zero
        var value = timeval(tv_sec: Int(duration.components.seconds), tv_usec: Int(duration.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// TCP keepalive probes after `idle` of silence, every `interval`,
    /// `count` times: a peer host that vanished without closing is found
    /// even by a side that has nothing to send.
    public func keepAlive(idle: Int32, interval: Int32, count: Int32) {
        var on: Int32 = 1, idle = idle, interval = interval, count = count
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
    }

    static func failure(_ call: String, _ code: Int32) -> TransferError {
        TransferError(.peerUnavailable, "tcp data lane \(call) failed: \(String(cString: strerror(code)))")
    }

    static func withAddresses<R>(
        host: String, port: Int, passive: Bool, _ body: (UnsafeMutablePointer<addrinfo>) throws(TransferError) -> R
    ) throws(TransferError) -> R {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw TransferError(.peerUnavailable, "cannot resolve \(host) for a tcp data lane: \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        return try body(first)
    }
}

/// A listening socket on the address the writer reached us at, port chosen
/// by the kernel.
public struct LaneListener: Sendable {
    public let socket: LaneSocket
    public let port: Int

    public init(host: String) throws(TransferError) {
        (socket, port) = try LaneSocket.withAddresses(host: host, port: 0, passive: true) { (info) throws(TransferError) in
            let fd = Glibc.socket(info.pointee.ai_family, info.pointee.ai_socktype, 0)
            guard fd >= 0 else { throw LaneSocket.failure("socket", errno) }
            var on: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 64) == 0 else {
                let code = errno
                Glibc.close(fd)
                throw TransferError(.peerUnavailable, "cannot listen for tcp data lanes on \(host): \(String(cString: strerror(code)))")
            }
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            let port = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
            return (LaneSocket(fd: fd), port)
        }
    }

    /// The next connection, or nil once the listener was shut down.
    public func accept() -> LaneSocket? {
        while true {
            let fd = Glibc.accept(socket.fd, nil, nil)
            if fd >= 0 {
                let lane = LaneSocket(fd: fd)
                lane.tune()
                return lane
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            return nil
        }
    }
}
