/// A callback held by reference, for storing in a lock.
///
/// A closure stored directly as a `Mutex` or `NIOLockedValueBox` value is
/// re-wrapped in a pair of reabstraction thunks each time it is read back
/// through the lock's `inout` accessor, and the wrapped closure is written
/// back: every read made later calls one level deeper. The fabric progress
/// thread read its handler once per completion, so after a few thousand
/// immediates most of a ping-pong's CPU went to walking thunks (and enough
/// of them would overflow the stack). A class reference passes through
/// unchanged.
final class Handler<Argument>: Sendable {
    let call: @Sendable (Argument) -> Void

    init(_ call: @escaping @Sendable (Argument) -> Void) {
        self.call = call
    }
}
