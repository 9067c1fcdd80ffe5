import GRPCCore

// Messages are raw bytes with no protobuf framing, so no protoc codegen (and no
// swift-protobuf plugin build) is needed, and the payload on the wire is the
// same 32 bytes `loom bench rpc` sends, inside gRPC's 5-byte message prefix.
struct RawBytesSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }
}

struct RawBytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
