/// One server-sent event: the `data:` lines of one blank-line-terminated
/// block, joined with newlines as the SSE spec says.
public struct SSEEvent: Equatable, Sendable {
    public var data: String

    public init(data: String) { self.data = data }

    /// OpenAI-style streams end with this sentinel instead of a JSON chunk.
    public var isDone: Bool { data == "[DONE]" }
}

/// Incremental SSE decoder fed with whatever byte slices the network hands
/// over. Bytes arrive split at arbitrary points (mid-line, mid-UTF-8
/// sequence), so the parser keeps the unfinished line as raw bytes and only
/// decodes complete lines.
public struct SSEParser: Sendable {
    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var lastWasCR = false

    public init() {}

    /// Consumes `bytes` and returns the events they completed, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [SSEEvent] {
        var events: [SSEEvent] = []
        for byte in bytes {
            // A CRLF pair is one line ending; the CR already ended the line.
            if lastWasCR && byte == UInt8(ascii: "\n") {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == UInt8(ascii: "\r")
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                if let event = endLine() { events.append(event) }
            } else {
                line.append(byte)
            }
        }
        return events
    }

    /// Flushes an event left open when the stream closed without the final
    /// blank line; servers that close right after `[DONE]` do this.
    public mutating func finish() -> SSEEvent? {
        if !line.isEmpty { _ = endLine() }
        return dispatch()
    }

    private mutating func endLine() -> SSEEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        let text = String(decoding: line, as: UTF8.self)
        // Lines starting with ':' are comments (keep-alives); other fields
        // (event:, id:, retry:) carry nothing an OpenAI stream needs.
        guard text.hasPrefix("data:") else { return nil }
        var value = text.dropFirst(5)
        if value.first == " " { value = value.dropFirst() }
        dataLines.append(String(value))
        return nil
    }

    private mutating func dispatch() -> SSEEvent? {
        guard !dataLines.isEmpty else { return nil }
        defer { dataLines.removeAll() }
        return SSEEvent(data: dataLines.joined(separator: "\n"))
    }
}
