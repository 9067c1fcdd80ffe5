import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Shared KV pools live in files under /dev/shm named after their owner,
/// which carries its pid; a worker killed before it could unlink its file
/// leaves it behind, so each start removes those of dead processes.
enum StaleSharedPools {
    static func remove(directory: String = "/dev/shm") {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix("loom-") {
            // loom-<worker>.pid<PID>-<epoch>-<region>
            guard let range = name.range(of: #"\.pid\d+-"#, options: .regularExpression) else { continue }
            let digits = name[range].dropFirst(4).dropLast()
            guard let pid = Int32(digits), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink("\(directory)/\(name)")
        }
    }
}
