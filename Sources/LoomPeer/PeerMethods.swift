import LoomWire
import NIOCore
import NIOPosix

/// The methods a peer server answers. The numbers are the wire's method ids;
/// `loom-peer` and `loom bench` binaries of different builds talk to each
/// other, so a number is never reused.
public enum PeerMethods {
    public static let echo: UInt32 = 1
    /// Returns "<count of immediate 1> <sum of region bytes>" as text; the
    /// request names the region: "fabric" the fabric one, anything else the
    /// first one.
    public static let inspect: UInt32 = 2
    /// Answers with nothing: for throughput of request attachments.
    public static let sink: UInt32 = 3
    /// Answers a client's fabric pings with writes of its own (`FabricServing`).
    public static let pong: UInt32 = 5
    /// Returns the server's regions as a `PeerDescription`, so a client that
    /// knows only the address can write into them.
    public static let describe: UInt32 = 6
}

extension RPCConfiguration {
    /// What both sides of a peer use: keepalive fast enough that a killed
    /// peer is noticed within the netns tests' timeouts.
    public static func peer(_ name: String) -> RPCConfiguration {
        var configuration = RPCConfiguration(nodeName: name)
        configuration.keepaliveInterval = .milliseconds(500)
        configuration.keepaliveMissLimit = 4
        return configuration
    }

    /// For timed loops: no keepalive pings between the measured frames.
    static func bench(_ name: String) -> RPCConfiguration {
        var configuration = peer(name)
        configuration.keepaliveInterval = nil
        return configuration
    }
}

/// Runs Swift tasks on NIO's event loop threads, so a call's frames and its
/// handler do not hop between two thread pools on every round trip. Only
/// works before anything has used Swift concurrency, and (on macOS) on the
/// main thread: call it first thing in `main`. False when it could not.
public func runTasksOnNIOEventLoops() -> Bool {
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
