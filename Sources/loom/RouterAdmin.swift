import Foundation
import Hummingbird
import LoomHTTP
import LoomRouter
import NIOCore

/// The router's operator API, which `loomctl` calls: the cluster's status,
/// the cache's tiers and counters, and the two things an operator does to
/// the cache (clear the workers' pools, pin a prefix in the store).
/// Reading is open, as `/metrics` is; changing the cache takes an API key
/// when the router has keys (and a pin lands in that key's namespace).
struct RouterAdmin {
    let state: ClusterState
    let backend: ClusterBackend
    let model: ServedModel
    let http: OpenAIServer.Configuration

    /// What `POST /admin/cache/pin` takes.
    struct PinRequest: Decodable {
        var text: String
        var ttl_seconds: Int
        /// "system" (the default): the text as a chat's system message;
        /// "prompt": as the start of a raw completion prompt.
        var as_: String?

        enum CodingKeys: String, CodingKey {
            case text, ttl_seconds
            case as_ = "as"
        }
    }

    func add(to router: Router<BasicRequestContext>) {
        router.get("/admin/status") { _, _ in try json(state.status) }
        router.get("/admin/cache") { _, _ in try json(state.cacheReport) }
        router.post("/admin/cache/clear") { request, _ in
            try authorize(request)
            return try json(["dropped": await backend.dropWorkerCaches()])
        }
        router.post("/admin/cache/pin") { request, context in
            try authorize(request)
            return try await pin(request, context: context)
        }
    }

    private func pin(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let body: PinRequest
        do {
            body = try await request.decode(as: PinRequest.self, context: context)
        } catch {
            return failure(.badRequest, "the body must be JSON with \"text\" (a string) and \"ttl_seconds\" (a number), and optionally \"as\": \"system\" or \"prompt\": \(error)")
        }
        guard (1...(7 * 24 * 3600)).contains(body.ttl_seconds) else {
            return failure(.badRequest, "ttl_seconds must be between 1 and 604800 (a week), got \(body.ttl_seconds)")
        }
        guard [nil, "system", "prompt"].contains(body.as_) else {
            return failure(.badRequest, "\"as\" must be \"system\" or \"prompt\", got \"\(body.as_ ?? "")\"")
        }
        do {
            let tokens = try model.prefixTokens(body.text, asSystemMessage: body.as_ != "prompt")
            let label = String(body.text.prefix(40)).replacingOccurrences(of: "\n", with: " ")
            // Pinned where the key's own requests will look for it.
            return try json(try await backend.pin(tokens, in: http.namespace(of: request), label: label, ttl: .seconds(body.ttl_seconds)))
        } catch let error as CacheAdminError {
            return failure(.conflict, error.description)
        }
    }

    private func authorize(_ request: Request) throws {
        guard http.admits(request) else {
            throw HTTPError(.unauthorized, message: "changing the cache needs 'Authorization: Bearer <key>' with the router's API key (loomctl --api-key, or LOOM_API_KEY)")
        }
    }

    private func json(_ value: some Encodable) throws -> Response {
        let body = try JSONEncoder.sorted.encode(value)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    private func failure(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = (try? JSONEncoder.sorted.encode(["error": message])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
