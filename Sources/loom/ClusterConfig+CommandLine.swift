import ArgumentParser
import LoomCluster
import LoomProtocol
import LoomWire

extension ClusterConfig {
    /// The config at `path` for a command: its errors name the file and the
    /// line, as the loader writes them. `settings` are the command's flags
    /// that the config sets, as (flag, value given): giving one beside the
    /// config is refused, since one of the two would be ignored.
    static func loadForCommandLine(_ path: String, refusing settings: [(flag: String, value: Any?)] = []) throws -> ClusterConfig {
        if let given = settings.first(where: { $0.value != nil }) {
            throw ValidationError("\(given.flag) cannot be combined with --config: the config sets it; edit \(path) or leave --config out")
        }
        do {
            return try load(path: path)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// `--role` of `loom worker`: the worker roles only (a store node is `loom kvstore`).
extension WorkerRole: ExpressibleByArgument {
    public init?(argument: String) {
        guard let role = WorkerRole(rawValue: argument), WorkerRole.workerRoles.contains(role) else { return nil }
        self = role
    }

    public static var allValueStrings: [String] { workerRoles.map(\.rawValue) }
}

extension RPCAddress: ExpressibleByArgument {
    /// `host:port`, as `--router` takes it.
    public init?(argument: String) {
        self.init(hostPort: argument)
    }
}

extension Limits {
    /// `Limits.check` for a flag: its error is a usage error.
    static func checkForCommandLine<Value: Comparable>(_ value: Value, in range: ClosedRange<Value>, _ flag: String) throws {
        do {
            try check(value, in: range, flag)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
