#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Weights are used in place from
/// the mapping, so loading a model costs page faults, not copies.
///
/// `@unchecked Sendable`: the mapping is created read-only (PROT_READ) in `init`
/// and unmapped only in `deinit`, when no other reference exists; no code path
/// writes through `bytes`, so concurrent readers cannot race.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw GGUFError(.unreadable, "\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw GGUFError(.unreadable, "\(path): cannot stat (\(String(cString: strerror(errno))))")
        }
        let size = Int(info.st_size)
        guard size > 0 else {
            throw GGUFError(.truncated, "\(path): the file is empty; expected a GGUF header")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw GGUFError(.unreadable, "\(path): cannot map \(size) bytes (\(String(cString: strerror(errno))))")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    /// Drops the whole pages inside `range` from this process's resident set
    /// (their contents were copied elsewhere). The mapping stays valid: a
    /// later read faults a page back in from the file.
    public func release(_ range: UnsafeRawBufferPointer) {
        guard let base = range.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + range.count) / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
    }
}
