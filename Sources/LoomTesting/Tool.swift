import Foundation

/// Runs a system tool (ip, curl) to completion for a test, with its
/// combined output. A missing tool is an error that says how to install it,
/// so a test needing it fails loudly instead of skipping.
public enum Tool {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameters:
    ///   - environment: the child's whole environment; nil inherits ours.
    ///   - directory: where it runs; nil is ours.
    public static func run(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil
    ) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw Missing(description: "\(path) is missing (apt-get install iproute2 curl, as scripts/install-deps.sh does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
