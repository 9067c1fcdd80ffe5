import Foundation

/// Rows of cells as text columns, each as wide as its widest cell, for the
/// tables `loomctl` prints.
enum Columns {
    static func aligned(_ header: [String], _ rows: [[String]]) -> [String] {
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }
        return ([header] + rows).map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
    }

    static func percent(_ rate: Double) -> String { String(format: "%.1f%%", rate * 100) }
}
