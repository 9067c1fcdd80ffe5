import Foundation
import Testing

@Suite("loom-peer serve stopped by a signal")
struct PeerServerSignalTests {
    @Test("SIGTERM removes the server's /dev/shm region and its Unix socket, and it exits cleanly")
    func sigtermCleansUp() async throws {
        // The epoch names the region file, so this run's file is told apart
        // from any other server's.
        let epoch = UInt64.random(in: 1...UInt64(UInt32.max))
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("loom-peer-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: NetnsTests.peerBinary)
        server.arguments = ["serve", "--shm", "--epoch", "\(epoch)", "--region-bytes", "65536"]
        let output = try FileHandle(forWritingTo: log)
        server.standardOutput = output
        server.standardError = output
        try server.run()
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() } }
        _ = try await NetnsTests.awaitLine("LISTENING", in: log)

        func regionFiles() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: "/dev/shm").filter { $0.hasPrefix("loom-server-\(epoch)-") }
        }
        let socket = "/tmp/loom-peer-\(server.processIdentifier).sock"
        #expect(try regionFiles().count == 1)
        #expect(FileManager.default.fileExists(atPath: socket))

        kill(server.processIdentifier, SIGTERM)
        try await NetnsTests.awaitExit(server, seconds: 30)
        #expect(server.terminationReason == .exit && server.terminationStatus == 0)
        #expect(try regionFiles().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: socket))
    }
}
