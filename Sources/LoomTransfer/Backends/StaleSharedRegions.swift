import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Shared regions live in files under /dev/shm named after their owner; an
/// owner named `<name>.pid<PID>` (a worker's KV pool, a store node's slots)
/// that was killed before it could unlink its file leaves it behind, so
/// each start removes those of dead processes.
public enum StaleSharedRegions {
    public static func remove(directory: String = "/dev/shm") {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix("loom-") {
            // loom-<name>.pid<PID>-<epoch>-<region>-<suffix>
            guard let range = name.range(of: #"\.pid\d+-"#, options: .regularExpression) else { continue }
            let digits = name[range].dropFirst(4).dropLast()
            guard let pid = Int32(digits), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink("\(directory)/\(name)")
        }
    }
}
