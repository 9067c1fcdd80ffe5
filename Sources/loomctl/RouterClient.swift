import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A failure that is not the command line's fault: printed without the usage.
struct LoomctlError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The router's operator API over HTTP, with errors that say what to check.
struct RouterClient {
    let router: String
    let apiKey: String?

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    func get(_ path: String) async throws -> Data {
        try await send(try request(path))
    }

    func post(_ path: String, _ body: [String: Any]) async throws -> Data {
        var request = try request(path)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        if let apiKey { request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization") }
        return try await send(request)
    }

    private func request(_ path: String) throws -> URLRequest {
        guard let url = URL(string: router + path), url.scheme != nil else {
            throw ValidationError("--router must be a URL like http://127.0.0.1:8080, got '\(router)'")
        }
        var request = URLRequest(url: url)
        // A pin may have a worker compute its prefix first.
        request.timeoutInterval = 120
        return request
    }

    private func send(_ request: URLRequest) async throws -> Data {
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw LoomctlError("cannot reach the router at \(router): \(error.localizedDescription); is it running (loom up)?")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else {
            let said = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]).flatMap { $0["error"] }
            let message = (said as? String) ?? ((said as? [String: Any])?["message"] as? String) ?? String(decoding: data.prefix(300), as: UTF8.self)
            throw LoomctlError("\(request.url?.absoluteString ?? router) answered \(status): \(message.isEmpty ? "is \(router) a Loom router?" : message)")
        }
        return data
    }
}
