import NIOCore
import NIOPosix

// nio-echo server PORT          echoes every byte back
// nio-echo client PORT CALLS    prints {"p50_rtt_us":..,"p99_rtt_us":..} for
//                               32-byte round trips driven two ways:
//   handler  the next ping is written from channelRead (no Swift tasks)
//   task     a task on the channel's event loop awaits each reply, as a
//            LoomWire caller with the event-loop executor does

final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// Collects 32 bytes and completes the waiting ping.
///
/// `@unchecked Sendable`: touched only on its channel's event loop, by the
/// pipeline or by tasks that run on that loop (`LoopExecutor`, `submit`).
final class Pinger: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var received = 0
    var waiting: EventLoopPromise<Void>?
    /// Handler mode: pings left to send from channelRead itself.
    var selfDriven = 0
    var started: ContinuousClock.Instant = .now
    var rtts: [Double] = []
    var finished: EventLoopPromise<Void>?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        guard received >= 32 else { return }
        received -= 32
        if let waiting {
            self.waiting = nil
            waiting.succeed()
            return
        }
        rtts.append(microseconds(ContinuousClock.now - started))
        if selfDriven > 0 {
            selfDriven -= 1
            started = .now
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(repeating: 1, count: 32)), promise: nil)
        } else {
            finished?.succeed()
        }
    }
}

func microseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) * 1e-12
}

final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop
    init(_ loop: any EventLoop) { self.loop = loop }
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Not on the main actor, so that it runs on the loop's executor.
nonisolated func taskDriven(_ channel: any Channel, _ pinger: Pinger, calls: Int) async throws -> [Double] {
    let loop = channel.eventLoop
    var rtts: [Double] = []
    for i in 0..<(calls + calls / 10) {
        let start = ContinuousClock.now
        let reply = loop.makePromise(of: Void.self)
        loop.preconditionInEventLoop()
        pinger.waiting = reply
        channel.writeAndFlush(ByteBuffer(repeating: 1, count: 32), promise: nil)
        try await reply.futureResult.get()
        if i >= calls / 10 { rtts.append(microseconds(ContinuousClock.now - start)) }
    }
    return rtts
}

func oneDecimal(_ value: Double) -> Double { (value * 10).rounded() / 10 }

func report(_ mode: String, _ rtts: [Double]) {
    let sorted = rtts.sorted()
    print("{\"bench\":\"nio-echo\",\"mode\":\"\(mode)\",\"calls\":\(sorted.count),\"p50_rtt_us\":\(oneDecimal(sorted[sorted.count / 2])),\"p99_rtt_us\":\(oneDecimal(sorted[sorted.count * 99 / 100]))}")
}

let arguments = CommandLine.arguments
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let port = Int(arguments[2])!
if arguments[1] == "server" {
    let server = try await ServerBootstrap(group: group)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) } }
        .bind(host: "127.0.0.1", port: port).get()
    try await server.closeFuture.get()
} else {
    let calls = Int(arguments[3])!
    let pinger = Pinger()
    let channel = try await ClientBootstrap(group: group)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(pinger) } }
        .connect(host: "127.0.0.1", port: port).get()
    let loop = channel.eventLoop
    // Handler-driven: warm up, then time.
    for (count, timed) in [(calls / 10, false), (calls, true)] {
        let done = loop.makePromise(of: Void.self)
        try await loop.submit {
            pinger.rtts = []
            pinger.finished = done
            pinger.selfDriven = count - 1
            pinger.started = .now
            channel.writeAndFlush(ByteBuffer(repeating: 1, count: 32), promise: nil)
        }.get()
        try await done.futureResult.get()
        if timed { report("handler", try await loop.submit { pinger.rtts }.get()) }
    }
    // Task-driven, on the loop's executor.
    let rtts = try await withTaskExecutorPreference(LoopExecutor(loop)) {
        try await taskDriven(channel, pinger, calls: calls)
    }
    report("task", rtts)
    try await channel.close().get()
    try await group.shutdownGracefully()
}
