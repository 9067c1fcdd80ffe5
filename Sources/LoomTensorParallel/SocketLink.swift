import Foundation
import Glibc
import LoomTransfer

/// A peer on another host, over one TCP connection: this rank's writes
/// leave as frames, each naming where in the peer's region its bytes go,
/// the last carrying the post; the peer's frames are landed in this rank's
/// region, and their arrival words posted, by this rank's compute thread
/// whenever it waits (`SocketProgress`). So a decode-sized all-reduce is a
/// send and a recv on the thread that needs it: no hand-off to another
/// thread, which on a machine with no core to spare costs a scheduler
/// slice, not microseconds.
final class SocketLink: PeerLink {
    let socket: LaneSocket
    let health: PeerHealth
    /// Drains every link while a send waits for room, so two ranks sending
    /// each other more than their buffers hold cannot deadlock. Set by the
    /// collective that owns both.
    weak var progress: SocketProgress?
    private var pending: [(offset: Int, bytes: UnsafeRawBufferPointer)] = []
    private let inbound: InboundFrames
    /// Frame headers and the vectors of one post, kept from post to post:
    /// a decode step posts some sixty times.
    private var headers = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * LinkFrame.bytes, alignment: 8)
    private var vectors: [iovec] = []

    /// `region` (this rank's, laid out by `layout`) is where the peer's
    /// frames land; `peer` is who is at the other end.
    init(socket: LaneSocket, peer: GroupMember, region: RegisteredRegion, layout: GroupRegionLayout) {
        self.socket = socket
        _ = fcntl(socket.fd, F_SETFL, fcntl(socket.fd, F_GETFL) | O_NONBLOCK)
        health = PeerHealth(member: peer, socket: socket.fd)
        inbound = InboundFrames(region: region, layout: layout, source: peer.rank)
    }

    deinit {
        health.markLost("was disconnected by this rank")
        socket.close()
        headers.deallocate()
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        pending.append((offset, bytes))
    }

    func post(_ count: UInt32) throws(TensorParallelError) {
        if pending.isEmpty { pending.append((0, UnsafeRawBufferPointer(start: nil, count: 0))) }
        defer {
            pending.removeAll(keepingCapacity: true)
            vectors.removeAll(keepingCapacity: true)
        }
        if headers.count < pending.count * LinkFrame.bytes {
            headers.deallocate()
            headers = .allocate(byteCount: pending.count * LinkFrame.bytes, alignment: 8)
        }
        for (i, write) in pending.enumerated() {
            let last = i == pending.count - 1
            let header = UnsafeMutableRawBufferPointer(rebasing: headers[i * LinkFrame.bytes ..< (i + 1) * LinkFrame.bytes])
            LinkFrame(offset: write.offset, length: write.bytes.count, posts: last, count: last ? count : 0).encode(into: header)
            vectors.append(iovec(iov_base: header.baseAddress, iov_len: header.count))
            if write.bytes.count > 0 { vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: write.bytes.baseAddress!), iov_len: write.bytes.count)) }
        }
        try send()
    }

    /// Sends without blocking; while the socket is full, lands whatever any
    /// peer sends meanwhile.
    private func send() throws(TensorParallelError) {
        let clock = ContinuousClock()
        var lastProgress = clock.now
        var first = 0
        while first < vectors.count {
            let n = vectors.withUnsafeMutableBufferPointer { v in
                var message = msghdr()
                message.msg_iov = v.baseAddress! + first
                message.msg_iovlen = min(v.count - first, 1024)  // UIO_MAXIOV
                return sendmsg(socket.fd, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN:
                    guard clock.now - lastProgress < GroupTiming.stepDeadline else {
                        throw lost("took none of this rank's writes for \(GroupTiming.stepDeadline)")
                    }
                    guard let progress else { throw lost("cannot be written: this rank's group is gone") }
                    try progress.wait(upTo: .milliseconds(50), writable: self)
                    continue
                default: throw lost("closed its connection (sendmsg: \(String(cString: strerror(errno))))")
                }
            }
            lastProgress = clock.now
            var left = n
            while left > 0 {
                if left >= vectors[first].iov_len {
                    left -= vectors[first].iov_len
                    first += 1
                } else {
                    vectors[first].iov_base += left
                    vectors[first].iov_len -= left
                    left = 0
                }
            }
        }
    }

    /// Whether the peer closed the connection between frames: everything
    /// it sent has landed, and nothing more will come. Not an error by
    /// itself (a peer that was stopped closes so), only for a wait on a
    /// message that will now never arrive.
    var isClosed: Bool { inbound.closed }

    /// Lands what the peer has sent so far, without waiting.
    func drain() throws(TensorParallelError) {
        guard !inbound.closed else { return }
        do {
            try inbound.drain(socket.fd)
        } catch {
            throw lost(error.message)
        }
        if inbound.closed { health.markLost("closed its connection") }
    }

    private func lost(_ reason: String) -> TensorParallelError {
        health.markLost(reason)
        let m = health.member
        return TensorParallelError(.rankLost, "rank \(m.rank) (pid \(m.pid) on \(m.host)) \(health.lost() ?? reason); restart the group")
    }
}

/// The frames arriving from one peer, read as far as the socket has them:
/// a frame may stop mid-header or mid-payload and go on at the next drain.
/// Reads go through a staging buffer, so a decode-sized message (header
/// and a row) is one recv, not three; the rest of a large payload is read
/// straight into the region.
private final class InboundFrames {
    let region: RegisteredRegion
    let layout: GroupRegionLayout
    let source: Int
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: LinkFrame.bytes, alignment: 8)
    private var headerFilled = 0
    private var frame: LinkFrame?
    private var payloadFilled = 0
    private(set) var closed = false
    private let staged = UnsafeMutableRawBufferPointer.allocate(byteCount: InboundFrames.stagingBytes, alignment: 64)
    /// The staged bytes not consumed yet: `staged[start..<end]`.
    private var start = 0, end = 0

    static let stagingBytes = 64 << 10

    init(region: RegisteredRegion, layout: GroupRegionLayout, source: Int) {
        self.region = region
        self.layout = layout
        self.source = source
    }

    deinit {
        header.deallocate()
        staged.deallocate()
    }

    func drain(_ fd: Int32) throws(TransferError) {
        let base = region.bytes.baseAddress!
        while true {
            if start == end {
                start = 0
                end = 0
                // A large payload's rest goes straight where it belongs.
                if let current = frame, current.length - payloadFilled >= Self.stagingBytes {
                    guard try read(fd, into: base + current.offset + payloadFilled, current.length - payloadFilled, &payloadFilled, atBoundary: false) else { return }
                    try finishFrame(base)
                    continue
                }
                guard try read(fd, into: staged.baseAddress!, staged.count, &end, atBoundary: frame == nil && headerFilled == 0) else { return }
            }
            try consumeStaged(base)
        }
    }

    /// Moves staged bytes into the header or the current frame's payload.
    private func consumeStaged(_ base: UnsafeMutableRawPointer) throws(TransferError) {
        guard let current = frame else {
            let n = min(end - start, header.count - headerFilled)
            (header.baseAddress! + headerFilled).copyMemory(from: staged.baseAddress! + start, byteCount: n)
            (start, headerFilled) = (start + n, headerFilled + n)
            if headerFilled == header.count {
                frame = try LinkFrame(decoding: UnsafeRawBufferPointer(header), writable: layout.headerBytes ..< region.bytes.count)
                (headerFilled, payloadFilled) = (0, 0)
                try finishFrame(base)
            }
            return
        }
        let n = min(end - start, current.length - payloadFilled)
        (base + current.offset + payloadFilled).copyMemory(from: staged.baseAddress! + start, byteCount: n)
        (start, payloadFilled) = (start + n, payloadFilled + n)
        try finishFrame(base)
    }

    /// A frame whose payload is all in is done: its post, if it carries one.
    private func finishFrame(_ base: UnsafeMutableRawPointer) throws(TransferError) {
        guard let current = frame, payloadFilled == current.length else { return }
        if current.posts { ArrivalWords(base: base, layout: layout).post(from: source, count: current.count) }
        frame = nil
    }

    /// One non-blocking read; false when nothing more is there yet, or
    /// ever (the peer closed between frames: `closed`).
    private func read(_ fd: Int32, into target: UnsafeMutableRawPointer, _ count: Int, _ filled: inout Int, atBoundary: Bool) throws(TransferError) -> Bool {
        while true {
            let n = recv(fd, target, count, Int32(MSG_DONTWAIT))
            if n > 0 {
                filled += n
                return true
            }
            if n == 0 {
                guard atBoundary else { throw TransferError(.peerUnavailable, "closed its connection in the middle of a write") }
                closed = true
                return false
            }
            switch errno {
            case EINTR: continue
            case EAGAIN: return false
            default: throw TransferError(.peerUnavailable, "closed its connection (recv: \(String(cString: strerror(errno))))")
            }
        }
    }
}

/// Every socket link of one rank, driven by its compute thread: what a
/// wait or a blocked send does instead of sleeping blind.
final class SocketProgress {
    let links: [SocketLink]

    init(_ links: [SocketLink]) {
        self.links = links
        for link in links { link.progress = self }
    }

    var isEmpty: Bool { links.isEmpty }

    /// Lands whatever has arrived on any link.
    func drainAll() throws(TensorParallelError) {
        for link in links { try link.drain() }
    }

    /// Sleeps in poll until a link has bytes (or `writable` has room), at
    /// most `timeout`; lands what came. Returns false if nothing did.
    @discardableResult
    func wait(upTo timeout: Duration, writable: SocketLink? = nil) throws(TensorParallelError) -> Bool {
        // A closed link would read as ready forever: leave it out.
        let open = links.filter { !$0.isClosed || $0 === writable }
        var fds = open.map { link in
            pollfd(fd: link.socket.fd, events: (link.isClosed ? 0 : Int16(POLLIN)) | (link === writable ? Int16(POLLOUT) : 0), revents: 0)
        }
        let ready = poll(&fds, nfds_t(fds.count), Int32(timeout / .milliseconds(1)))
        guard ready > 0 else { return false }
        for (link, fd) in zip(open, fds) where fd.revents & ~Int16(POLLOUT) != 0 { try link.drain() }
        return true
    }
}

/// One write on a socket link: where its bytes go in the receiver's
/// region, how many follow the header, and whether it completes a message
/// (`posts`, with the message's arrival count: the immediate).
///
///     magic u32 | flags u32 | offset u64 | length u32 | count u32   (LE)
struct LinkFrame: Equatable {
    static let bytes = 24
    static let magic: UInt32 = 0x4654_504C  // "LPTF"

    var offset: Int
    var length: Int
    var posts: Bool
    var count: UInt32

    init(offset: Int, length: Int, posts: Bool, count: UInt32) {
        self.offset = offset
        self.length = length
        self.posts = posts
        self.count = count
    }

    func encode(into header: UnsafeMutableRawBufferPointer) {
        header.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
        header.storeBytes(of: UInt32(posts ? 1 : 0).littleEndian, toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: UInt64(offset).littleEndian, toByteOffset: 8, as: UInt64.self)
        header.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 16, as: UInt32.self)
        header.storeBytes(of: count.littleEndian, toByteOffset: 20, as: UInt32.self)
    }

    /// A frame whose bytes would land outside `writable` (the receiver's
    /// region past its arrival words) is refused, not written.
    init(decoding header: UnsafeRawBufferPointer, writable: Range<Int>) throws(TransferError) {
        func load<T: FixedWidthInteger>(_: T.Type, _ at: Int) -> T { T(littleEndian: header.loadUnaligned(fromByteOffset: at, as: T.self)) }
        guard load(UInt32.self, 0) == Self.magic else {
            throw TransferError(.invalidRequest, "sent a frame without the group link's magic (\(String(load(UInt32.self, 0), radix: 16))); is something other than a Loom rank connected?")
        }
        let flags = load(UInt32.self, 4)
        let offset = load(UInt64.self, 8), length = Int(load(UInt32.self, 16))
        guard flags & ~1 == 0 else { throw TransferError(.invalidRequest, "sent a frame with unknown flags \(flags)") }
        let fits = offset >= UInt64(writable.lowerBound) && offset <= UInt64(writable.upperBound) && Int(offset) + length <= writable.upperBound
        guard length == 0 || fits else {
            throw TransferError(.invalidRequest, "sent a write of \(length) bytes at offset \(offset), outside this rank's region \(writable); the ranks disagree on the region's layout")
        }
        self.init(offset: length == 0 ? 0 : Int(offset), length: length, posts: flags & 1 == 1, count: load(UInt32.self, 20))
    }
}
