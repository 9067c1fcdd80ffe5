import Dispatch
import Foundation

/// Runs `body` until it returns or the process gets SIGINT/SIGTERM, which
/// cancels it; every child task is cancelled and awaited before this returns.
/// A server stopped this way releases what it holds (its /dev/shm regions,
/// its Unix socket) instead of dying with them in place.
public func runUntilSignalled(_ body: @escaping @Sendable () async throws -> Void) async throws {
    let task = Task { try await body() }
    let sources = [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { task.cancel() }
        source.resume()
        return source
    }
    defer { for source in sources { source.cancel() } }
    do {
        try await task.value
    } catch is CancellationError {
        // Stopped by a signal: the normal way out.
    }
}
