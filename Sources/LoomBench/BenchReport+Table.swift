import Foundation

extension BenchReport {
    /// The human-readable summary printed without `--json`.
    public func table() -> String {
        let load = concurrency.map { "\($0) concurrent clients (closed loop)" }
            ?? rate.map { "Poisson arrivals at \(format($0, 2)) req/s (open loop)" } ?? ""
        var lines = [
            "workload \(workload), model \(model), \(load)",
            "requests      \(requests - failures) ok, \(failures) failed, \(format(duration_s, 2)) s",
            "output        \(output_tokens) tokens, \(format(output_tok_s, 2)) tok/s, \(format(request_s, 3)) req/s",
            "prompt        " + (prompt_tokens_mean.map { "\(format($0, 1)) tokens per request (server's count)" } ?? "server sent no token counts"),
            "",
            "latency (ms)       p50        p90        p99",
        ]
        for (label, value) in [("TTFT", ttft_ms), ("ITL", itl_ms), ("E2E", e2e_ms)] {
            guard let value else {
                lines.append(pad(label, 8) + "  no successful request")
                continue
            }
            lines.append(pad(label, 8) + [value.p50, value.p90, value.p99].map { padLeft(format($0, 1), 11) }.joined())
        }
        if !failure_reasons.isEmpty {
            lines.append("")
            lines.append("first failure reasons:")
            lines += failure_reasons.map { "  - \($0)" }
        }
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(width - text.count, 0))
    }

    private func padLeft(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(width - text.count, 0)) + text
    }
}
