import Foundation

/// Finds the model to load when the user names none: `$LOOM_MODEL`, else the
/// place `scripts/fetch-model.sh` puts SmolLM2-135M-Instruct.
public enum ModelLocator {
    public static let defaultFileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    public static var defaultPath: String {
        if let env = ProcessInfo.processInfo.environment["LOOM_MODEL"], !env.isEmpty { return env }
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        return "\(home)/.cache/loom/models/\(defaultFileName)"
    }

    /// The explicit path if given, else the default one if the file exists.
    public static func resolve(_ explicit: String?) throws -> String {
        if let explicit { return explicit }
        let path = defaultPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw GGUFError(
                .unreadable,
                "no --model given and no model at \(path); fetch the default one with `bash scripts/fetch-model.sh` or pass --model PATH")
        }
        return path
    }
}
