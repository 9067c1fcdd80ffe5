import GRPCCore

/// A hand-written descriptor for `loom.bench.Echo/Get`; what protoc would
/// generate for a unary `rpc Get(bytes) returns (bytes)`.
enum Echo {
    static let get = MethodDescriptor(
        service: ServiceDescriptor(fullyQualifiedService: "loom.bench.Echo"),
        method: "Get",
        type: .unary
    )
}

/// Replies with the request's bytes.
struct EchoService: RegistrableRPCService {
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Echo.get,
            deserializer: RawBytesDeserializer(),
            serializer: RawBytesSerializer()
        ) { request, _ in
            let single = try await ServerRequest(stream: request)
            return StreamingServerResponse(single: ServerResponse(message: single.message))
        }
    }
}
