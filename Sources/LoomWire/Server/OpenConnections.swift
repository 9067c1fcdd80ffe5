import NIOConcurrencyHelpers
import NIOCore

/// Every connection a server accepted, from the moment its pipeline is set
/// up until it closes. Calls are served from the event loop as soon as the
/// HELLO is done, before the accept loop takes the connection, so stopping
/// the server by cancelling the accept loop alone could leave a connection
/// answering calls: stopping closes every connection listed here instead.
final class OpenConnections: Sendable {
    private struct State {
        var open: [ObjectIdentifier: AcceptedConnection] = [:]
        var closed = false
    }

    private let state = NIOLockedValueBox(State())

    /// Lists `connection` until its channel closes; closes it at once when
    /// the server has stopped already.
    func add(_ connection: AcceptedConnection) {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        let added = state.withLockedValue { state in
            guard !state.closed else { return false }
            state.open[id] = connection
            return true
        }
        guard added else {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { _ in
            self.state.withLockedValue { _ = $0.open.removeValue(forKey: id) }
        }
    }

    /// Closes every listed connection and waits until each is closed and
    /// its calls have ended. Connections accepted afterwards are refused.
    func closeAll() async {
        let open = state.withLockedValue { state in
            state.closed = true
            return Array(state.open.values)
        }
        for connection in open { connection.channel.close(promise: nil) }
        for connection in open {
            try? await connection.channel.closeFuture.get()
            await connection.calls.drain()
        }
    }
}
