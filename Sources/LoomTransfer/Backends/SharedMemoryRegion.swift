#if canImport(Glibc)
import Glibc
#endif

/// Regions in files under /dev/shm, mapped MAP_SHARED by their owner and by
/// every writer on the same host. The file name carries owner, epoch and
/// region id, and the owner unlinks it on deregistration, so a descriptor
/// from a previous incarnation finds no file and is refused.
public enum SharedMemoryRegion {
    public static let backendKey = "shm"

    /// The random suffix keeps two region tables that share an owner name
    /// and epoch (a caller's mistake, or two workers in one test process)
    /// from opening each other's memory.
    static func path(directory: String, _ descriptor: RegionDescriptor) -> String {
        "\(directory)/loom-\(descriptor.owner)-\(descriptor.epoch)-\(descriptor.regionID)-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
    }

    /// Registers a shared region of `length` bytes in `table`.
    public static func register(in table: RegionTable, length: Int, directory: String = "/dev/shm") throws -> RegisteredRegion {
        try table.register(length: length) { descriptor in
            let path = path(directory: directory, descriptor)
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw errnoError("create \(path)") }
            defer { close(fd) }
            guard ftruncate(fd, off_t(length)) == 0 else { unlink(path); throw errnoError("size \(path)") }
            // Populated now, as private regions are when they are zeroed:
            // writers then never pay the owner's first-touch page faults.
            let memory = try map(fd: fd, length: length, path: path, populate: true)
            var shared = descriptor
            shared.backendKeys[backendKey] = Array(path.utf8)
            return RegisteredRegion(descriptor: shared, memory: memory) { memory in
                munmap(memory.baseAddress, memory.count)
                unlink(path)
            }
        }
    }

    /// Maps a peer's region for writing, from its descriptor; `munmap` it
    /// when done.
    public static func mapPeer(_ descriptor: RegionDescriptor) throws(TransferError) -> UnsafeMutableRawBufferPointer {
        guard let key = descriptor.backendKeys[backendKey] else {
            throw TransferError(.invalidRequest, "region \(descriptor.regionID) of \(descriptor.owner) was not registered for shm")
        }
        let path = String(decoding: key, as: UTF8.self)
        let fd = open(path, O_RDWR)
        guard fd >= 0 else {
            throw TransferError(.staleDescriptor, "cannot open \(path) (errno \(errno)): \(descriptor.owner) restarted or deregistered the region; ask for fresh descriptors")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, Int(status.st_size) == descriptor.length else {
            throw TransferError(.staleDescriptor, "\(path) is not \(descriptor.length) bytes long; the descriptor does not match the region")
        }
        do {
            return try map(fd: fd, length: descriptor.length, path: path)
        } catch {
            throw TransferError(.peerUnavailable, "\(error)")
        }
    }

    private static func map(fd: Int32, length: Int, path: String, populate: Bool = false) throws -> UnsafeMutableRawBufferPointer {
        let flags = MAP_SHARED | (populate ? MAP_POPULATE : 0)
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, flags, fd, 0), base != MAP_FAILED else {
            throw errnoError("map \(path)")
        }
        return UnsafeMutableRawBufferPointer(start: base, count: length)
    }

    private static func errnoError(_ what: String) -> TransferError {
        TransferError(.invalidRequest, "cannot \(what): errno \(errno)")
    }
}
