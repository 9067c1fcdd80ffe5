import Foundation

/// Runs a system tool (ip, curl) to completion for a test, with its
/// combined output. A missing tool is an error that says how to install it,
/// so a test needing it fails loudly instead of skipping.
public enum Tool {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw Missing(description: "\(path) is missing (apt-get install iproute2 curl, as scripts/install-deps.sh does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
