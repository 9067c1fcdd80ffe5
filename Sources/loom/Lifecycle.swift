import Foundation
import ServiceLifecycle

/// This incarnation of the process: a restarted one gets another, so what
/// the last one handed out (region descriptors, registrations) is refused.
func processEpoch() -> UInt64 {
    UInt64(Date().timeIntervalSince1970 * 1_000_000) ^ UInt64(ProcessInfo.processInfo.processIdentifier)
}

/// One line on stdout, flushed: scripts and `loom up` read these.
func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Runs `body` until it returns, or until the service group shuts down
/// gracefully (SIGTERM, SIGINT), which cancels it: then it returns, as a
/// stop asked for is no failure.
func stoppedGracefully(_ body: @escaping @Sendable () async throws -> Void) async throws {
    do {
        try await cancelWhenGracefulShutdown(body)
    } catch is CancellationError {
        // Stopped on purpose.
    }
}
