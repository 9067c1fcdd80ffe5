import Foundation
import Testing
import LoomTransfer

@Suite("Stale /dev/shm files of dead processes")
struct StaleSharedRegionsTests {
    /// The pid of a process that has exited and been reaped.
    static func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    @Test("a start removes the KV pools and doorbells of dead processes, and nothing else")
    func removesOnlyTheDead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-stale-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dead = try Self.deadPID()
        let alive = getpid()
        let names = [
            "loom-decode-1.pid\(dead)-7-1": false,
            "loom-doorbell.pid\(dead)-3kq9": false,
            "loom-decode-1.pid\(alive)-7-1": true,
            "loom-doorbell.pid\(alive)-3kq9": true,
            "other.pid\(dead)-1": true,
            "loom-without-a-pid": true,
        ]
        for name in names.keys { FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data([1])) }
        StaleSharedRegions.remove(directory: directory)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        #expect(left == Set(names.filter(\.value).keys))
    }
}
