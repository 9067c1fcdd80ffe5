import Foundation
import NIOConcurrencyHelpers

/// A thread of its own for a loop that blocks (in futex for the shm
/// doorbell, in recv and send for tcp lanes): on a Swift cooperative thread
/// that would starve every other task. Whoever starts one owns it: it tells
/// the loop to stop and awaits `join()`.
final class JoinableThread: Sendable {
    private struct State {
        var finished = false
        var joiners: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    init(name: String, _ loop: @escaping @Sendable () -> Void) {
        let thread = Thread { [state] in
            loop()
            let joiners = state.withLockedValue { state in
                state.finished = true
                defer { state.joiners = [] }
                return state.joiners
            }
            for joiner in joiners { joiner.resume() }
        }
        thread.name = name
        thread.start()
    }

    /// Returns once the loop has returned, without blocking a thread.
    func join() async {
        await withCheckedContinuation { (joiner: CheckedContinuation<Void, Never>) in
            let finished = state.withLockedValue { state in
                if !state.finished { state.joiners.append(joiner) }
                return state.finished
            }
            if finished { joiner.resume() }
        }
    }
}
