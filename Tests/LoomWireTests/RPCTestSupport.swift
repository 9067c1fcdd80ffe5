import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import LoomWire

enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case tcp, unix
    var testDescription: String { rawValue }

    var bindAddress: RPCAddress {
        switch self {
        case .tcp: .tcp(host: "127.0.0.1", port: 0)
        case .unix: .unix(path: "/tmp/loomwire-test-\(UInt64.random(in: 0...UInt64.max)).sock")
        }
    }
}

enum Echo {
    static let unary = RPCMethod<Loom_Wire_EchoRequest, Loom_Wire_EchoResponse>(1)
    static let stream = RPCMethod<Loom_Wire_EchoRequest, Loom_Wire_EchoResponse>(2)

    static func request(_ text: String, count: UInt32 = 0, attachmentBytes: UInt32 = 0) -> Loom_Wire_EchoRequest {
        var request = Loom_Wire_EchoRequest()
        request.text = text
        request.count = count
        request.attachmentBytes = attachmentBytes
        return request
    }

    /// Echo that returns the request's text and attachment; streams `count` items.
    static func services(extra: (inout RPCServices) -> Void = { _ in }) -> RPCServices {
        var services = RPCServices()
        services.unary(unary) { request, call in
            var response = Loom_Wire_EchoResponse()
            response.text = request.text
            return (response, call.message.attachment)
        }
        services.serverStreaming(stream) { request, _, writer in
            let attachment = ByteBuffer(repeating: 0xAB, count: Int(request.attachmentBytes))
            for index in 0..<request.count {
                var item = Loom_Wire_EchoResponse()
                item.text = request.text
                item.index = index
                try await writer.send(item, attachment: attachment)
            }
        }
        extra(&services)
        return services
    }
}

/// A latch a handler opens so a test can wait for something to happen on
/// the server, without sleeping.
final class Signal: Sendable {
    private let state = NIOLockedValueBox<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = state.withLockedValue { state in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let fired = state.withLockedValue { state in
                if !state.fired { state.waiters.append(continuation) }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }

    var isFired: Bool { state.withLockedValue { $0.fired } }
}

func configuration(_ name: String, recorder: LogRecorder? = nil, maxFrameSize: Int = 4 << 20) -> RPCConfiguration {
    var configuration = RPCConfiguration(nodeName: name, logger: recorder?.logger(name))
    configuration.maxFrameSize = maxFrameSize
    configuration.keepaliveInterval = nil
    return configuration
}

/// Runs a server for the duration of `body` and stops it afterwards.
func withServer<Result: Sendable>(
    _ transport: Transport,
    services: RPCServices = Echo.services(),
    configuration serverConfiguration: RPCConfiguration = configuration("server"),
    _ body: @Sendable (RPCServer) async throws -> Result
) async throws -> Result {
    let server = try await RPCServer.bind(transport.bindAddress, services: services, configuration: serverConfiguration)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        defer { group.cancelAll() }
        return try await body(server)
    }
}

func withClient<Result: Sendable>(
    _ server: RPCServer, configuration clientConfiguration: RPCConfiguration = configuration("client"),
    _ body: (RPCConnection) async throws -> Result
) async throws -> Result {
    try await RPCConnection.withConnection(to: server.localAddress, configuration: clientConfiguration, body)
}

func expectWireError<T>(_ code: WireError.Code, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("expected \(code), got success")
    } catch let error as WireError {
        #expect(error.code == code, "\(error)")
    } catch {
        Issue.record("expected \(code), got \(error)")
    }
}
