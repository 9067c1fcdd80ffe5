import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import LoomWire

/// Collects log records so tests can assert that a reason was logged.
final class LogRecorder: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let box = NIOLockedValueBox([Record]())

    var records: [Record] { box.withLockedValue { $0 } }

    func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    func append(_ record: Record) { box.withLockedValue { $0.append(record) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            all.merge(event.metadata ?? [:]) { $1 }
            recorder.append(Record(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }

    /// Reasons of the "closing connection" warnings logged so far.
    var closeReasons: [String] {
        records.filter { $0.message == "closing connection" }.compactMap { $0.metadata["reason"] }
    }
}

enum Fixtures {
    static func bytes(_ name: String, filePath: String = #filePath) throws -> ByteBuffer {
        let dir = filePath.split(separator: "/").dropLast().joined(separator: "/")
        let text = try String(contentsOfFile: "/\(dir)/Fixtures/\(name).hex", encoding: .utf8)
        let hex = text.split(separator: "\n")
            .map { $0.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
            .joined().filter { !$0.isWhitespace }
        precondition(hex.count.isMultiple(of: 2), "odd hex digit count in \(name)")
        var out = ByteBuffer()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.writeInteger(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }
}

/// A deterministic generator so a failing fuzz case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension ByteBuffer {
    init(string: String, repeating count: Int) {
        self.init(string: String(repeating: string, count: count))
    }
}
