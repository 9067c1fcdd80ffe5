import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LoomTesting
import Testing

/// A client that goes away mid-stream must free its sequence in the engine:
/// the request is cancelled, not generated to the end for nobody.
@Suite struct HangUpTests {
    /// Sends a raw HTTP request on a socket and returns it once the first
    /// SSE event has arrived, so the caller can hang up mid-stream.
    func openStream(port: Int, body: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0, "cannot connect to 127.0.0.1:\(port)")
        let request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var seen = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !seen.contains("data: {") {
            let n = recv(fd, &buffer, buffer.count, 0)
            try #require(n > 0, "the server closed the stream before its first event: \(seen)")
            seen += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return fd
    }

    func metric(_ name: String, _ server: ServeProcess) async throws -> Double? {
        let (data, _) = try await URLSession.shared.data(from: server.baseURL.appendingPathComponent("metrics"))
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test func aClientThatHangsUpMidStreamIsCancelledInTheEngine() async throws {
        let server = try ServeProcess()
        defer { _ = server.stop() }
        let port = try #require(server.baseURL.port)
        let fd = try openStream(port: port, body: #"{"prompt": "Once upon a time", "max_tokens": 8000, "stream": true, "ignore_eos": true, "temperature": 0}"#)
        #expect(try await metric("loom_running_requests", server) == 1)
        close(fd)
        // Bounded polling, not a timing assertion: the engine frees the
        // sequence at its next step after the disconnect is noticed.
        var running: Double? = 1
        for _ in 0..<300 where running != 0 {
            try await Task.sleep(for: .milliseconds(100))
            running = try await metric("loom_running_requests", server)
        }
        // 8000 tokens take well over a minute here; 30 s of polling would
        // still see the sequence running had it not been cancelled.
        #expect(running == 0, "the sequence kept running after its client left")
    }
}
