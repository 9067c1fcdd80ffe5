import Yams

extension ClusterConfig {
    /// A Yams parsing error as a `ConfigError` at the position libyaml
    /// reported, so syntax errors read like every other config error.
    static func syntaxError(_ error: any Error, yaml: String, file: String) -> ConfigError {
        guard let error = error as? YamlError else {
            return ConfigError(.syntax, file: file, line: 1, column: 1, "YAML error: \(error)")
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            // libyaml's context names the construct it was inside
            // ("while scanning a quoted scalar"), often far above the problem.
            let inside = context.map { " (\($0.text) from line \($0.mark.line))" } ?? ""
            return ConfigError(.syntax, file: file, line: mark.line, column: mark.column, "YAML syntax error: \(problem)\(inside)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return ConfigError(.duplicateKey, file: file, line: context.mark.line, column: context.mark.column,
                               "key \(keys) appears more than once in the same mapping")
        case .reader(let problem, let offset, _, _):
            let (line, column) = position(ofCharacter: offset ?? 0, in: yaml)
            return ConfigError(.syntax, file: file, line: line, column: column, "cannot read the YAML text: \(problem)")
        default:
            return ConfigError(.syntax, file: file, line: 1, column: 1, "YAML error: \(error)")
        }
    }

    /// 1-based line and column of the `offset`th character of `text`.
    private static func position(ofCharacter offset: Int, in text: String) -> (Int, Int) {
        var line = 1, column = 1
        for character in text.prefix(offset) {
            if character.isNewline { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }
}
