import ArgumentParser
import Foundation
import LoomModel

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Path to a GGUF model (default: $LOOM_MODEL or ~/.cache/loom/models/\(ModelLocator.defaultFileName)).")
    var model: String?

    @Option(name: .long, help: "Compute threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func modelPath() throws -> String {
        do {
            return try ModelLocator.resolve(model)
        } catch let error as GGUFError {
            throw ValidationError(error.message)
        }
    }
}
