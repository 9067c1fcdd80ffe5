import Foundation

/// The package's own executables (`loom`, `loomctl`), built beside the
/// tests: whichever of the release and debug builds is newer.
public enum BuiltExecutable {
    public static func url(_ name: String) -> URL {
        let build = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build")
        let candidates = ["release", "debug"].map { build.appendingPathComponent("\($0)/\(name)") }
        let existing = candidates.filter { FileManager.default.fileExists(atPath: $0.path) }
        func modified(_ url: URL) -> Date {
            (try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
        }
        return existing.max { modified($0) < modified($1) } ?? candidates[0]
    }
}

/// What a child process has written up to the end of its first line (its
/// "listening on …" announcement), or everything it wrote before exiting.
public func readFirstLine(of handle: FileHandle) -> String {
    var seen = ""
    while !seen.contains("\n") {
        let data = handle.availableData
        guard !data.isEmpty else { break }
        seen += String(decoding: data, as: UTF8.self)
    }
    return seen
}
