import AsyncHTTPClient
import Foundation
import NIOCore

/// A problem that stops a benchmark before it starts, with a message that
/// says what to change.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) { self.description = description }
}

extension ServerTarget {
    /// The first model id from `GET /v1/models`: both Loom and llama-server
    /// list exactly the model they serve.
    public func firstModel(using http: HTTPClient, timeout: Duration) async throws -> String {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request("/v1/models"), timeout: .seconds(Int64(max(timeout.seconds, 1))))
        } catch {
            throw BenchError("cannot reach \(baseURL)/v1/models: \(error); is the server up? (or pass --model)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw BenchError("GET \(baseURL)/v1/models answered HTTP \(response.status.code): \(errorMessage(String(buffer: body)))")
        }
        guard let list = try? JSONDecoder().decode(ModelListBody.self, from: Data(body.readableBytesView)),
              let first = list.data.first else {
            throw BenchError("GET \(baseURL)/v1/models listed no model; pass --model")
        }
        return first.id
    }
}
