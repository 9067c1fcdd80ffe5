import Foundation
import Logging
import NIOCore

/// Where an RPC endpoint listens or is reached.
public enum RPCAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): "tcp://\(host):\(port)"
        case .unix(let path): "unix://\(path)"
        }
    }
}

/// Settings shared by clients and servers. Both sides must agree on
/// `maxFrameSize` for large attachments to pass; each enforces its own.
public struct RPCConfiguration: Sendable {
    public var nodeName: String
    public var maxFrameSize: Int = 64 << 20
    /// Ping when the peer has been silent this long; nil turns keepalive off.
    public var keepaliveInterval: Duration? = .seconds(10)
    /// Silent intervals tolerated before the connection is declared dead.
    public var keepaliveMissLimit: Int = 3
    /// Frames a server-streaming call buffers before the connection stops
    /// reading; this is what pushes back on a fast server.
    public var streamBufferCapacity: Int = 16
    public var capabilities: [String] = ["unary", "server-streaming", "attachments", "cancel", "deadline"]
    /// What the layers above offer peers in the HELLO, opaque to the RPC:
    /// the transfer layer's backends (see `LoomTransfer`), serialized.
    public var offers: [Data] = []
    public var epoch: UInt64 = 0
    public var logger: Logger

    public init(nodeName: String, logger: Logger? = nil) {
        self.nodeName = nodeName
        self.logger = logger ?? Logger(label: "loom.wire.\(nodeName)")
    }

    var hello: Loom_Wire_Hello {
        var hello = Loom_Wire_Hello()
        hello.versions = [1]
        hello.capabilities = capabilities
        hello.offers = offers
        hello.nodeName = nodeName
        hello.maxFrameSize = UInt64(maxFrameSize)
        hello.epoch = epoch
        return hello
    }
}

extension Duration {
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Whole milliseconds, truncated: for durations that travel in protocol
    /// fields, command lines and status pages.
    public var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// Whole microseconds, truncated.
    public var wholeMicroseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// Rounded up so that a tiny deadline never becomes "no deadline" (0).
    var wireMilliseconds: UInt32 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return UInt32(clamping: max(ms, 1))
    }
}

enum Pipeline {
    /// Installs the codec, the connection handler and the router that hands
    /// requests to their calls (the server's side). Must run on the
    /// channel's event loop.
    static func configureServer(_ channel: Channel, configuration: RPCConfiguration, services: RPCServices) throws -> AcceptedConnection {
        let handshake = try addCodec(channel, role: .server, configuration: configuration, sinks: services.sinks)
        var logger = configuration.logger
        logger[metadataKey: "remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        let connection = ServerConnection(services: services, outbound: FrameWriter(channel: channel),
                                          executor: EventLoopExecutor(channel.eventLoop), logger: logger,
                                          localAddress: channel.localAddress)
        // Runs on the loop as the HELLO completes, before any request is forwarded.
        handshake.whenSuccess { connection.established($0) }
        try channel.pipeline.syncOperations.addHandler(RequestRouter(connection))
        return AcceptedConnection(channel: channel, calls: connection)
    }

    /// Installs the frame codec and the connection handler; the future
    /// completes with the peer once the HELLO exchange is done.
    static func addCodec(
        _ channel: Channel,
        role: HandshakeStateMachine.Role,
        configuration: RPCConfiguration,
        sinks: [UInt32: any AttachmentSink] = [:]
    ) throws -> EventLoopFuture<PeerInfo> {
        let promise = channel.eventLoop.makePromise(of: PeerInfo.self)
        let sync = channel.pipeline.syncOperations
        let gate = HandshakeGate()
        try sync.addHandler(FrameReader(FrameDecoder(maxFrameSize: configuration.maxFrameSize, sinks: sinks, gate: gate)))
        try sync.addHandler(FrameEncoder())
        var logger = configuration.logger
        logger[metadataKey: "remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        try sync.addHandler(ConnectionHandler(
            handshake: HandshakeStateMachine(role: role, local: configuration.hello),
            handshakePromise: promise,
            gate: gate,
            keepaliveInterval: configuration.keepaliveInterval?.timeAmount,
            keepaliveMissLimit: configuration.keepaliveMissLimit,
            logger: logger
        ))
        return promise.futureResult
    }
}

/// A server connection as the listener yields it.
struct AcceptedConnection: Sendable {
    let channel: Channel
    let calls: ServerConnection
}
