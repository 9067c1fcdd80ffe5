import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the echo method over plaintext HTTP/2 until killed.")

    @Option(help: "TCP port on 127.0.0.1; 0 picks a free one.")
    var port: Int = 0

    @OptionGroup var executor: ExecutorOption

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
    }

    func run() async throws {
        executor.install()
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext),
            services: [EchoService()]
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            guard let address = try await server.listeningAddress?.ipv4 else {
                throw ValidationError("server did not bind an IPv4 address")
            }
            // Scripts wait for this line to learn the port, as they do for `loom bench peer-server`.
            FileHandle.standardOutput.write(Data("LISTENING \(address.host):\(address.port)\n".utf8))
        }
    }
}
