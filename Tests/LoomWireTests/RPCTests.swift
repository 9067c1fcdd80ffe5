import struct Foundation.Data
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import LoomWire

@Suite("Wire RPC over real sockets")
struct RPCTests {
    static let gid = Data((0..<16).map { UInt8($0) })

    @Test("HELLO carries names, versions and the layers' opaque offers", arguments: Transport.allCases)
    func hello(transport: Transport) async throws {
        var serverConfiguration = configuration("decode-0")
        serverConfiguration.offers = [Self.gid, Data(), Data([0xFF])]
        try await withServer(transport, configuration: serverConfiguration) { server in
            try await withClient(server) { connection in
                #expect(connection.peer.hello.nodeName == "decode-0")
                #expect(connection.peer.version == 1)
                #expect(connection.peer.hello.offers == [Self.gid, Data(), Data([0xFF])])
            }
        }
    }

    @Test("unary echo with a 1 MiB attachment", arguments: Transport.allCases)
    func unary(transport: Transport) async throws {
        try await withServer(transport) { server in
            try await withClient(server) { connection in
                var attachment = ByteBuffer(repeating: 0x5A, count: 1 << 20)
                attachment.setString("first", at: 0)
                attachment.setString("last", at: (1 << 20) - 4)
                let (response, echoed) = try await connection.unary(Echo.unary, Echo.request("hi"), attachment: attachment)
                #expect(response.text == "hi")
                #expect(echoed == attachment)
            }
        }
    }

    @Test("concurrent unary calls on one connection each get their own answer", arguments: Transport.allCases)
    func concurrentUnary(transport: Transport) async throws {
        try await withServer(transport) { server in
            try await withClient(server) { connection in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for i in 0..<64 {
                        group.addTask {
                            let (response, _) = try await connection.unary(Echo.unary, Echo.request("call-\(i)"))
                            #expect(response.text == "call-\(i)")
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }

    @Test("server streaming delivers every item in order, then ends", arguments: Transport.allCases)
    func serverStreaming(transport: Transport) async throws {
        try await withServer(transport) { server in
            try await withClient(server) { connection in
                let indices = try await connection.serverStreaming(method: Echo.stream.id, try RPCMessage(Echo.request("s", count: 100, attachmentBytes: 1000))) { stream in
                    var indices: [UInt32] = []
                    for try await item in stream {
                        let response: Loom_Wire_EchoResponse = try item.decode()
                        #expect(item.attachment.readableBytes == 1000)
                        indices.append(response.index)
                    }
                    return indices
                }
                #expect(indices == Array(0..<100))
            }
        }
    }

    @Test("an unknown method or a failing handler fails only that call")
    func callErrors() async throws {
        let services = Echo.services { services in
            services.unary(9) { _ in throw WireError(.badMessage, "handler refused") }
        }
        try await withServer(.tcp, services: services) { server in
            try await withClient(server) { connection in
                await expectWireError(.unknownMethod) { try await connection.unary(method: 77, RPCMessage()) }
                await expectWireError(.badMessage) { try await connection.unary(method: 9, RPCMessage()) }
                let (response, _) = try await connection.unary(Echo.unary, Echo.request("still here"))
                #expect(response.text == "still here")
            }
        }
    }

    @Test("an immediate method is answered on the server's event loop, and its errors reach the caller", arguments: Transport.allCases)
    func immediate(transport: Transport) async throws {
        struct Broken: Error {}
        let services = Echo.services { services in
            services.immediate(RPCMethod<Loom_Wire_EchoRequest, Loom_Wire_EchoResponse>(13)) { request, call in
                var response = Loom_Wire_EchoResponse()
                // On the loop and in no task: a unary call runs on the loop too, but in a task.
                let onTheLoop = MultiThreadedEventLoopGroup.currentEventLoop != nil
                let inATask = withUnsafeCurrentTask { $0 != nil }
                response.text = onTheLoop && !inATask ? request.text : "answered on the loop \(onTheLoop), in a task \(inATask)"
                return (response, call.message.attachment)
            }
            services.immediate(14) { _ in throw WireError(.badMessage, "refused at once") }
            services.immediate(15) { _ in throw Broken() }
        }
        try await withServer(transport, services: services) { server in
            try await withClient(server) { connection in
                let method = RPCMethod<Loom_Wire_EchoRequest, Loom_Wire_EchoResponse>(13)
                let (response, echoed) = try await connection.unary(method, Echo.request("now"), attachment: ByteBuffer(string: "tail"))
                #expect(response.text == "now")
                #expect(echoed == ByteBuffer(string: "tail"))
                await expectWireError(.badMessage) { try await connection.unary(method: 14, RPCMessage()) }
                await expectWireError(.handlerFailed) { try await connection.unary(method: 15, RPCMessage()) }
                let (after, _) = try await connection.unary(method, Echo.request("after"))
                #expect(after.text == "after")
            }
        }
    }

    @Test("a deadline fails the call and cancels the handler on the server")
    func deadline() async throws {
        let handlerCancelled = Signal()
        let services = Echo.services { services in
            services.unary(10) { _ in
                // Only cancellation ends this handler before the test does.
                try await withTaskCancellationHandler {
                    try await Task.sleep(for: .seconds(3600))
                } onCancel: { handlerCancelled.fire() }
                return RPCMessage()
            }
        }
        try await withServer(.tcp, services: services) { server in
            try await withClient(server) { connection in
                await expectWireError(.deadlineExceeded) { try await connection.unary(method: 10, RPCMessage(), timeout: .milliseconds(50)) }
                await handlerCancelled.wait()
                #expect(handlerCancelled.isFired)
            }
        }
    }

    @Test("cancelling the calling task cancels the handler on the server", arguments: Transport.allCases)
    func cancellation(transport: Transport) async throws {
        let started = Signal()
        let handlerCancelled = Signal()
        let services = Echo.services { services in
            services.unary(11) { _ in
                started.fire()
                try await withTaskCancellationHandler {
                    try await Task.sleep(for: .seconds(3600))
                } onCancel: { handlerCancelled.fire() }
                return RPCMessage()
            }
        }
        try await withServer(transport, services: services) { server in
            try await withClient(server) { connection in
                let call = Task { try await connection.unary(method: 11, RPCMessage()) }
                await started.wait()
                call.cancel()
                await expectWireError(.cancelled) { try await call.value }
                await handlerCancelled.wait()
                #expect(handlerCancelled.isFired)
            }
        }
    }

    @Test("leaving a stream early cancels the streaming handler")
    func streamEarlyExit() async throws {
        let handlerCancelled = Signal()
        let services = Echo.services { services in
            services.serverStreaming(12) { _, writer in
                do {
                    while true { try await writer.send(RPCMessage(attachment: ByteBuffer(string: "tick"))) }
                } catch {
                    handlerCancelled.fire()
                    throw error
                }
            }
        }
        try await withServer(.tcp, services: services) { server in
            try await withClient(server) { connection in
                let taken = try await connection.serverStreaming(method: 12, RPCMessage()) { stream in
                    var taken = 0
                    for try await _ in stream {
                        taken += 1
                        if taken == 3 { break }
                    }
                    return taken
                }
                #expect(taken == 3)
                await handlerCancelled.wait()
                let (response, _) = try await connection.unary(Echo.unary, Echo.request("after"))
                #expect(response.text == "after")
            }
        }
    }
}

