import NIOCore

/// Runs tasks on a channel's event loop thread.
///
/// A call that reads and writes one connection from the global pool crosses
/// threads at every step: its write wakes the event loop, and each frame the loop
/// reads wakes a pool thread. On this project's 2-core VMs each of those wake-ups
/// costs about as much as the socket round trip itself. A task that prefers this
/// executor writes straight into the channel, and it is resumed on the thread that
/// read the reply. Its work then shares that thread with the I/O of every channel
/// on the loop, so only work that never blocks belongs here.
public final class EventLoopExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
