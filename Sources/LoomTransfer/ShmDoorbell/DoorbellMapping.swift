import CLoomShm
#if canImport(Glibc)
import Glibc
#endif

/// A doorbell file mapped into this process. The writer creates it and names
/// it in its setup call; the target maps it and unlinks it, so once both
/// have it mapped there is no name left to clean up. (If setup fails the
/// writer unlinks it; if the writer dies first, the pid in the name lets
/// the next worker start remove it, as with shared KV pools.)
///
/// `@unchecked Sendable`: the stored properties never change; the bytes
/// they point to are shared with another process anyway, and every access
/// goes through atomics (header words) or through the one side that owns a
/// ring slot at that moment (see `DoorbellRing`). The file is unmapped in
/// `deinit`, once no doorbell thread or write holds a reference.
final class DoorbellMapping: @unchecked Sendable {
    static let directory = "/dev/shm"
    static let namePrefix = "loom-doorbell"

    let base: UnsafeMutableRawPointer
    let geometry: DoorbellGeometry
    let path: String

    private init(base: UnsafeMutableRawPointer, geometry: DoorbellGeometry, path: String) {
        self.base = base
        self.geometry = geometry
        self.path = path
    }

    deinit { munmap(base, geometry.fileBytes) }

    func word(_ word: DoorbellWord) -> UnsafeMutableRawPointer { base + word.rawValue }

    var commits: DoorbellRing {
        DoorbellRing(slots: base + geometry.commitRingOffset, count: geometry.commitSlots,
                     slotBytes: DoorbellGeometry.commitSlotBytes, head: word(.commitHead), tail: word(.commitTail))
    }

    var acks: DoorbellRing {
        DoorbellRing(slots: base + geometry.ackRingOffset, count: geometry.ackSlots,
                     slotBytes: DoorbellGeometry.ackSlotBytes, head: word(.ackHead), tail: word(.ackTail))
    }

    var targetBell: Bell { Bell(word: word(.targetBell), sleeping: word(.targetSleeping)) }
    var writerBell: Bell { Bell(word: word(.writerBell), sleeping: word(.writerSleeping)) }

    func isRaised(_ flag: DoorbellWord) -> Bool { loom_shm_load_acquire_u32(word(flag)) != 0 }
    func raise(_ flag: DoorbellWord) { loom_shm_store_release_u32(word(flag), 1) }

    /// The writer's side: a fresh, zeroed file (all indices 0) with its header.
    static func create(geometry: DoorbellGeometry = .standard, directory: String = directory) throws(TransferError) -> DoorbellMapping {
        let path = "\(directory)/\(namePrefix).pid\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw TransferError(.peerUnavailable, "cannot create doorbell \(path): errno \(errno); is \(directory) a writable tmpfs?") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(geometry.fileBytes)) == 0, let base = map(fd, geometry.fileBytes) else {
            let error = errno
            unlink(path)
            throw TransferError(.peerUnavailable, "cannot size or map doorbell \(path): errno \(error)")
        }
        base.storeBytes(of: DoorbellGeometry.magic, toByteOffset: DoorbellWord.magic.rawValue, as: UInt64.self)
        base.storeBytes(of: DoorbellGeometry.version, toByteOffset: DoorbellWord.version.rawValue, as: UInt32.self)
        base.storeBytes(of: UInt32(geometry.commitSlots), toByteOffset: DoorbellWord.commitSlots.rawValue, as: UInt32.self)
        base.storeBytes(of: UInt32(geometry.ackSlots), toByteOffset: DoorbellWord.ackSlots.rawValue, as: UInt32.self)
        return DoorbellMapping(base: base, geometry: geometry, path: path)
    }

    /// The target's side: maps the writer's file and unlinks it. The path
    /// comes off the wire, so only a regular file directly in `directory`
    /// with the doorbell prefix is opened (never through a symlink), and
    /// its header and size must describe a layout this build knows.
    static func open(path: String, directory: String = directory) throws(TransferError) -> DoorbellMapping {
        let name = path.hasPrefix(directory + "/") ? path.dropFirst(directory.count + 1) : ""
        guard name.hasPrefix(namePrefix + "."), !name.contains("/") else {
            throw TransferError(.invalidRequest, "\"\(path)\" is not a doorbell: doorbells are files named \(directory)/\(namePrefix).pid<pid>-<id>")
        }
        let fd = Glibc.open(path, O_RDWR | O_NOFOLLOW)
        guard fd >= 0 else {
            throw TransferError(.invalidRequest, "cannot open doorbell \(path) (errno \(errno)): the writer must create it on this host before naming it")
        }
        defer { close(fd) }
        let geometry = try readHeader(fd, path: path)
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG), Int(status.st_size) == geometry.fileBytes else {
            throw TransferError(.invalidRequest, "doorbell \(path) is not a regular file of \(geometry.fileBytes) bytes, as its header says it should be")
        }
        guard let base = map(fd, geometry.fileBytes) else {
            throw TransferError(.peerUnavailable, "cannot map doorbell \(path): errno \(errno)")
        }
        unlink(path)
        return DoorbellMapping(base: base, geometry: geometry, path: path)
    }

    /// Read with `pread` rather than from the mapping so that the sizes are
    /// known before anything is mapped, and read once: the writer could
    /// change the header later, but the target never looks at it again.
    private static func readHeader(_ fd: Int32, path: String) throws(TransferError) -> DoorbellGeometry {
        var header = [UInt8](repeating: 0, count: 20)
        let read = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let fields = header.withUnsafeBytes { bytes in
            (bytes.load(fromByteOffset: DoorbellWord.magic.rawValue, as: UInt64.self),
             bytes.load(fromByteOffset: DoorbellWord.version.rawValue, as: UInt32.self),
             bytes.load(fromByteOffset: DoorbellWord.commitSlots.rawValue, as: UInt32.self),
             bytes.load(fromByteOffset: DoorbellWord.ackSlots.rawValue, as: UInt32.self))
        }
        guard read == header.count, fields.0 == DoorbellGeometry.magic, fields.1 == DoorbellGeometry.version else {
            throw TransferError(.invalidRequest, "\(path) has no doorbell header of version \(DoorbellGeometry.version); writer and target must run the same build")
        }
        return try DoorbellGeometry(commitSlots: Int(fields.2), ackSlots: Int(fields.3))
    }

    private static func map(_ fd: Int32, _ length: Int) -> UnsafeMutableRawPointer? {
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else { return nil }
        return base
    }

    /// For a writer whose setup failed before the target took the file.
    func unlinkIfPresent() { unlink(path) }
}
