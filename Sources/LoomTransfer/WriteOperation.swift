import NIOConcurrencyHelpers
import NIOCore

/// One one-sided write to one peer: bytes for zero or more places in that
/// peer's regions, and an optional immediate counted when all have landed.
public struct WriteOperation: Sendable {
    public struct Segment: Sendable {
        public var region: RegionDescriptor
        public var offset: Int
        private var source: Source

        /// Where the bytes come from: a buffer of their own, or a range of
        /// registered memory read when the write goes out, so the `shm`
        /// backend copies them once, straight into the peer's mapping.
        private enum Source: Sendable {
            case buffer(ByteBuffer)
            case registered(RegisteredRegion, Range<Int>)
        }

        public init(region: RegionDescriptor, offset: Int, bytes: ByteBuffer) {
            self.region = region
            self.offset = offset
            self.source = .buffer(bytes)
        }

        /// `range` of `local`, read when the write is sent: the owner keeps
        /// those bytes unchanged until the write returns, as with RDMA.
        init(region: RegionDescriptor, offset: Int, from local: RegisteredRegion, range: Range<Int>) {
            self.region = region
            self.offset = offset
            self.source = .registered(local, range)
        }

        public var count: Int {
            switch source {
            case .buffer(let buffer): buffer.readableBytes
            case .registered(_, let range): range.count
            }
        }

        /// The bytes in a buffer, for backends that send from one (tcp,
        /// verbs, fabric); a copy when they are in registered memory.
        public var bytes: ByteBuffer {
            switch source {
            case .buffer(let buffer): buffer
            case .registered(let local, let range): ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: local.bytes[range]))
            }
        }

        public func withUnsafeReadableBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
            switch source {
            case .buffer(let buffer): try buffer.withUnsafeReadableBytes(body)
            case .registered(let local, let range): try body(UnsafeRawBufferPointer(rebasing: local.bytes[range]))
            }
        }

        /// Cuts the first `count` bytes off into a segment of their own
        /// (a slice, not a copy): how a long write is striped.
        mutating func removeFirst(_ count: Int) -> Segment {
            var head = self
            switch source {
            case .buffer(var buffer):
                head.source = .buffer(buffer.readSlice(length: count)!)
                source = .buffer(buffer)
            case .registered(let local, let range):
                head.source = .registered(local, range.lowerBound..<range.lowerBound + count)
                source = .registered(local, range.lowerBound + count..<range.upperBound)
            }
            offset += count
            return head
        }

        /// Where the segment's bytes go, as a write request names it.
        var wire: Loom_Transfer_WriteSegment {
            var wire = Loom_Transfer_WriteSegment()
            wire.regionID = region.regionID
            wire.epoch = region.epoch
            wire.offset = UInt64(offset)
            wire.length = UInt64(count)
            return wire
        }
    }

    public var segments: [Segment]
    public var immediate: UInt32?
    /// Unique in this process; a target applies each id once, so a
    /// duplicated delivery of the same write is never counted twice.
    public let id: UInt64

    private static let nextID = NIOLockedValueBox<UInt64>(1)

    /// Validated against the descriptors here, so an out-of-region write is
    /// refused before it leaves the process (the target checks again).
    init(segments: [Segment], immediate: UInt32?) throws(TransferError) {
        for segment in segments {
            try segment.region.checkBounds(offset: segment.offset, count: segment.count)
        }
        self.segments = segments
        self.immediate = immediate
        self.id = Self.nextID.withLockedValue { id in
            defer { id += 1 }
            return id
        }
    }

    public var byteCount: Int { segments.reduce(0) { $0 + $1.count } }

    /// The write as a target reads it, from `sender`'s incarnation `epoch`;
    /// its bytes follow as the segments' payload, in order.
    public func request(sender: String, epoch: UInt64) -> Loom_Transfer_WriteRequest {
        var request = Loom_Transfer_WriteRequest()
        request.opID = id
        request.sender = sender
        request.senderEpoch = epoch
        request.carriesImmediate = immediate != nil
        request.immediate = immediate ?? 0
        request.segments = segments.map(\.wire)
        return request
    }

    /// `count` bytes from `source` at `sourceOffset` to `remote` at
    /// `remoteOffset`, read when the write is sent (as `paged`).
    public static func single(
        from source: RegisteredRegion, offset sourceOffset: Int, count: Int,
        to remote: RegionDescriptor, offset remoteOffset: Int, immediate: UInt32? = nil
    ) throws(TransferError) -> WriteOperation {
        try source.descriptor.checkBounds(offset: sourceOffset, count: count)
        return try WriteOperation(segments: [Segment(region: remote, offset: remoteOffset, from: source, range: sourceOffset..<sourceOffset + count)], immediate: immediate)
    }

    /// Pages `sourcePages[i]` (of `pageLength` bytes, `sourceStride` apart)
    /// to `remotePages[i]` (`remoteStride` apart): how a KV block table maps
    /// onto another worker's pool. The pages are read when the write is
    /// sent, not copied here: the caller leaves them alone until it returns.
    public static func paged(
        from source: RegisteredRegion, pages sourcePages: [Int], stride sourceStride: Int,
        to remote: RegionDescriptor, pages remotePages: [Int], stride remoteStride: Int,
        pageLength: Int, immediate: UInt32? = nil
    ) throws(TransferError) -> WriteOperation {
        guard sourcePages.count == remotePages.count, pageLength <= sourceStride, pageLength <= remoteStride else {
            throw TransferError(.invalidRequest, "paged write needs as many source pages as remote pages (\(sourcePages.count) vs \(remotePages.count)) and pages no longer than their strides")
        }
        var segments: [Segment] = []
        segments.reserveCapacity(sourcePages.count)
        for (sourcePage, remotePage) in zip(sourcePages, remotePages) {
            let offset = sourcePage * sourceStride
            try source.descriptor.checkBounds(offset: offset, count: pageLength)
            segments.append(Segment(region: remote, offset: remotePage * remoteStride, from: source, range: offset..<offset + pageLength))
        }
        return try WriteOperation(segments: segments, immediate: immediate)
    }

    /// Consecutive pages of `local` (each `pageLength` bytes) to
    /// `remotePages[i]` (`remoteStride` apart), without copying `local`:
    /// how a prefill worker ships the KV blocks it exported to the blocks a
    /// decode worker reserved.
    public static func pages(
        of local: ByteBuffer, pageLength: Int, to remote: RegionDescriptor, pages remotePages: some Collection<Int>,
        stride remoteStride: Int, immediate: UInt32? = nil
    ) throws(TransferError) -> WriteOperation {
        guard pageLength > 0, local.readableBytes == remotePages.count * pageLength else {
            throw TransferError(.invalidRequest, "\(local.readableBytes) bytes do not make \(remotePages.count) pages of \(pageLength) bytes (remote stride \(remoteStride))")
        }
        let buffers = (0..<remotePages.count).map { local.getSlice(at: local.readerIndex + $0 * pageLength, length: pageLength)! }
        return try pages(buffers, to: remote, pages: remotePages, stride: remoteStride, immediate: immediate)
    }

    /// `buffers[i]` to page `remotePages[i]` (`remoteStride` apart), each
    /// buffer sent as it is: pages gathered from anywhere, no copy made.
    public static func pages(
        _ buffers: [ByteBuffer], to remote: RegionDescriptor, pages remotePages: some Collection<Int>,
        stride remoteStride: Int, immediate: UInt32? = nil
    ) throws(TransferError) -> WriteOperation {
        guard buffers.count == remotePages.count, buffers.allSatisfy({ $0.readableBytes <= remoteStride }) else {
            throw TransferError(.invalidRequest, "\(buffers.count) pages for \(remotePages.count) remote pages, or a page longer than the remote stride \(remoteStride)")
        }
        let segments = zip(buffers, remotePages).map { bytes, page in Segment(region: remote, offset: page * remoteStride, bytes: bytes) }
        return try WriteOperation(segments: segments, immediate: immediate)
    }

    /// `local` cut into `runs` in order, each to its offset in `remote`:
    /// one write to many places (slices of `local`, no copy).
    public static func scattered(
        _ local: ByteBuffer, to remote: RegionDescriptor, runs: [(offset: Int, count: Int)], immediate: UInt32? = nil
    ) throws(TransferError) -> WriteOperation {
        guard local.readableBytes == runs.reduce(0, { $0 + $1.count }) else {
            throw TransferError(.invalidRequest, "\(local.readableBytes) bytes for runs of \(runs.reduce(0) { $0 + $1.count })")
        }
        var at = local.readerIndex
        let segments = runs.map { run in
            defer { at += run.count }
            return Segment(region: remote, offset: run.offset, bytes: local.getSlice(at: at, length: run.count)!)
        }
        return try WriteOperation(segments: segments, immediate: immediate)
    }

    /// No bytes, only the immediate: a signal that counts like a write.
    public static func immediateOnly(_ immediate: UInt32) -> WriteOperation {
        try! WriteOperation(segments: [], immediate: immediate)
    }
}
