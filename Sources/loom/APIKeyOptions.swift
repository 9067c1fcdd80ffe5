import ArgumentParser
import Foundation

/// The gateway's API keys, for `loom router` and `loom serve` alike.
struct APIKeyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "A key clients must send as 'Authorization: Bearer <key>'; repeat for several (else $LOOM_API_KEYS, comma-separated).",
        discussion: "With keys, each key's requests share cached KV only with requests under the same key."))
    var apiKey: [String] = []

    /// The keys from the flags, else from the environment.
    var apiKeys: [String] {
        guard apiKey.isEmpty else { return apiKey }
        return (ProcessInfo.processInfo.environment["LOOM_API_KEYS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
