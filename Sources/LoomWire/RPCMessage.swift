import NIOCore
import SwiftProtobuf

/// A message section and an attachment section: what a call sends or gets.
public struct RPCMessage: Sendable, Hashable {
    public var message: ByteBuffer
    public var attachment: ByteBuffer

    public init(message: ByteBuffer = ByteBuffer(), attachment: ByteBuffer = ByteBuffer()) {
        self.message = message
        self.attachment = attachment
    }

    public init(_ proto: some SwiftProtobuf.Message, attachment: ByteBuffer = ByteBuffer()) throws {
        let bytes: [UInt8] = try proto.serializedBytes()
        self.init(message: ByteBuffer(bytes: bytes), attachment: attachment)
    }

    /// Decodes the message section; a bad one is the caller's fault.
    public func decode<M: SwiftProtobuf.Message>(_ type: M.Type = M.self) throws(WireError) -> M {
        do {
            return try M(serializedBytes: Array(message.readableBytesView))
        } catch {
            throw WireError(.badMessage, "message is not a valid \(M.protoMessageName): \(error)")
        }
    }

    init(_ frame: Frame) {
        self.init(message: frame.message, attachment: frame.attachment)
    }
}

/// A method id tied to its request and response types.
public struct RPCMethod<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable {
    public let id: UInt32
    public init(_ id: UInt32) {
        precondition(id != HandshakeStateMachine.helloMethod, "method 0 is reserved for HELLO")
        self.id = id
    }
}
