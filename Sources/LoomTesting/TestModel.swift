import Foundation
import LoomModel

/// Locates the real model the fidelity tests run against. Real-model tests
/// must fail, never skip, when it is missing: a skipped golden test looks
/// like a passing one.
public enum TestModel {
    public struct MissingModel: Error, CustomStringConvertible {
        public var code = "missingModel"
        public var message: String
        public var description: String { "\(code): \(message)" }
    }

    public static let fileName = ModelLocator.defaultFileName

    /// $LOOM_MODEL if set, else the cache `scripts/fetch-model.sh` fills, else /tmp/models.
    public static func path() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["LOOM_MODEL"], !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else {
                throw MissingModel(message: "LOOM_MODEL is \(path), but no file is there; run `bash scripts/fetch-model.sh` or fix LOOM_MODEL")
            }
            return path
        }
        // The default location is the one `loom` itself uses; /tmp/models is
        // where ../shared/tools/fetch-smollm2 puts it for measurements.
        let candidates = [ModelLocator.defaultPath, "/tmp/models/\(fileName)"]
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            return found
        }
        throw MissingModel(message: "no test model at \(candidates.joined(separator: " or ")); run `bash scripts/fetch-model.sh` to download it")
    }
}
