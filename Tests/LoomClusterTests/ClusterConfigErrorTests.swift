import LoomCluster
import Testing

/// The error `yaml` is rejected with, nil when it parses.
private func failure(_ yaml: String) -> ConfigError? {
    do {
        _ = try ClusterConfig.parse(yaml: yaml, file: "cluster.yaml")
        return nil
    } catch {
        return error
    }
}

/// Checks the error's kind and position and that its message names `key`.
private func expect(
    _ yaml: String, _ kind: ConfigError.Kind, line: Int, column: Int? = nil, mentions words: [String],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error = failure(yaml) else {
        Issue.record("the config was accepted", sourceLocation: sourceLocation)
        return
    }
    #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
    #expect(error.file == "cluster.yaml", sourceLocation: sourceLocation)
    #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
    if let column { #expect(error.column == column, "\(error)", sourceLocation: sourceLocation) }
    for word in words {
        #expect(error.message.contains(word), "\(error)", sourceLocation: sourceLocation)
    }
}

/// A valid router section taking lines 1-3, for tests about workers.
private let router = """
    router:
      port: 9000
      rpc_port: 9001
    """

@Suite struct ClusterConfigErrorTests {
    @Test func syntaxErrorsCarryLibyamlsPosition() {
        expect("router:\n\tport: 9000\n", .syntax, line: 2, column: 1, mentions: ["YAML syntax error"])
        expect("\(router)\nworkers: [{name: d, role: decode, port: 9002}\n", .syntax, line: 5, mentions: ["YAML syntax error"])
    }

    @Test func aKeyGivenTwiceIsNamed() {
        expect("router:\n  port: 9000\n  rpc_port: 9001\n  port: 9002\n", .duplicateKey, line: 2, mentions: ["'port'"])
    }

    @Test func unknownKeysListTheAllowedOnes() {
        expect("\(router)\n  policy: prefix-aware\n  prefix_wieght: 2\n", .unknownKey, line: 5, column: 3,
               mentions: ["'prefix_wieght'", "in router", "prefix_weight", "heartbeat_timeout_ms"])
        expect("\(router)\nworkers:\n  - name: d\n    role: decode\n    prot: 9002\n", .unknownKey, line: 7,
               mentions: ["'prot'", "workers[0]", "allowed keys: name, role, host, port"])
        expect("\(router)\nworker: []\n", .unknownKey, line: 4, column: 1, mentions: ["'worker'", "top level", "workers"])
    }

    @Test func wrongTypesQuoteWhatWasFound() {
        expect("\(router)\nworkers:\n  - name: d\n    role: decode\n    port: abc\n", .wrongType, line: 7, column: 11,
               mentions: ["workers[0].port must be an integer, got 'abc'"])
        expect("router:\n  port: 9000\n  rpc_port: 9001\n  prefix_weight: heavy\n", .wrongType, line: 4,
               mentions: ["router.prefix_weight must be a number, got 'heavy'"])
        expect("\(router)\nworkers:\n  - name: d\n    role: leader\n    port: 9002\n", .wrongType, line: 6,
               mentions: ["workers[0].role must be one of prefill, decode, mixed, got 'leader'"])
        expect("\(router)\n  policy: fastest\n", .wrongType, line: 4,
               mentions: ["router.policy", "round-robin, least-loaded, prefix-aware", "'fastest'"])
        expect("router: [9000, 9001]\n", .wrongType, line: 1, mentions: ["router must be a mapping", "a list"])
        expect("\(router)\nworkers:\n  name: d\n", .wrongType, line: 5, mentions: ["workers must be a list", "a mapping"])
    }

    @Test func storeNodesAreCheckedLikeWorkers() {
        let worker = "\(router)\nworkers:\n  - {name: d, role: decode, port: 9002}\n"
        expect(worker + "kvstores:\n  - {name: d, port: 9003, dram_mib: 64}\n", .duplicateName, line: 7,
               mentions: ["'d'", "worker or store node on line 5"])
        expect(worker + "kvstores:\n  - {name: s, port: 9002, dram_mib: 64}\n", .duplicatePort, line: 7, mentions: ["kvstores[0].port 9002", "worker d"])
        expect(worker + "kvstores:\n  - {name: s, port: 9003, dram_mib: 0}\n", .outOfRange, line: 7, mentions: ["kvstores[0].dram_mib", "1"])
        expect(worker + "kvstores:\n  - {name: s, port: 9003}\n", .missingKey, line: 7, mentions: ["dram_mib"])
        expect(worker + "kvstores:\n  - {name: s, port: 9003, dram_mib: 64, disk: 2}\n", .unknownKey, line: 7,
               mentions: ["'disk'", "allowed keys: name, host, port, dram_mib, disk_dir, disk_gib"])
        expect(worker + "kvstores:\n  - {name: s, port: 9003, dram_mib: 64, disk_dir: d, disk_gib: 0}\n", .outOfRange, line: 7,
               mentions: ["kvstores[0].disk_gib"])
        expect(worker + "kvstores:\n  - {name: s, port: 9003, dram_mib: 64}\nkvstore: {replicas: 2}\n", .outOfRange, line: 8,
               mentions: ["kvstore.replicas is 2 but kvstores lists 1 store node", "node of its own"])
        expect(worker + "kvstore: {admission: sometimes}\n", .wrongType, line: 6, mentions: ["kvstore.admission", "after-first-reuse, all"])
        expect(worker + "kvstore: {tiers: 2}\n", .unknownKey, line: 6, mentions: ["'tiers'", "replicas, admission"])
        expect(worker + "kvstores: {name: s}\n", .wrongType, line: 6, mentions: ["kvstores must be a list"])
        expect("\(router)\nworkers:\n  - {name: d, role: kvstore, port: 9002}\n", .wrongType, line: 5,
               mentions: ["workers[0].role must be one of prefill, decode, mixed, got 'kvstore'"])
    }

    @Test func aFabricProviderIsOneLoomKnowsAndTheSameOnEveryWorker() {
        expect("\(router)\nworkers:\n  - name: d\n    role: decode\n    port: 9002\n    fabric_provider: psm3\n", .wrongType, line: 8,
               mentions: ["workers[0].fabric_provider must be one of tcp;ofi_rxm, verbs;ofi_rxm, efa, got 'psm3'"])
        expect("\(router)\nworkers:\n  - name: d\n    role: decode\n    port: 9002\n    fabric_provider: shm\n", .invalidValue, line: 8,
               mentions: ["workers[0].fabric_provider 'shm' is not supported", "wedges", "leave fabric_provider out"])
        let mixed = """
            \(router)
            workers:
              - {name: p, role: prefill, port: 9002, fabric_provider: "tcp;ofi_rxm"}
              - {name: d, role: decode, port: 9003}
            """
        expect(mixed, .invalidValue, line: 6, mentions: ["workers[1].fabric_provider must be the same on every worker", "'none' here", "'tcp;ofi_rxm' on worker p"])
    }

    @Test func outOfRangeValuesNameTheRange() {
        expect("router:\n  port: 70000\n  rpc_port: 9001\n", .outOfRange, line: 2,
               mentions: ["router.port must be between 1 and 65535, got 70000"])
        expect("\(router)\nworkers:\n  - name: d\n    role: decode\n    port: 9002\n    threads: 0\n", .outOfRange, line: 8,
               mentions: ["workers[0].threads", "got 0"])
        expect("\(router)\n  heartbeat_interval_ms: 1000\n  heartbeat_timeout_ms: 1000\n", .outOfRange, line: 5,
               mentions: ["heartbeat_timeout_ms (1000) must be longer than router.heartbeat_interval_ms (1000)"])
    }

    @Test func missingKeysPointAtTheSectionThatLacksThem() {
        expect("router:\n  port: 9000\nworkers: []\n", .missingKey, line: 1, mentions: ["'rpc_port'", "in router"])
        expect("\(router)\nworkers:\n  - name: d\n    port: 9002\n", .missingKey, line: 5, mentions: ["'role'", "workers[0]"])
        expect("\(router)\n", .missingKey, line: 1, mentions: ["'workers'", "top level"])
        expect("\(router)\nworkers:\n", .missingKey, line: 4, mentions: ["workers needs a value"])
        expect("\(router)\nworkers: []\n", .missingKey, line: 4, mentions: ["at least one worker"])
        expect("# nothing yet\n", .missingKey, line: 1, mentions: ["empty"])
    }

    @Test func workerNamesAreUniqueAndWellFormed() {
        let twice = "\(router)\nworkers:\n  - {name: d, role: decode, port: 9002}\n  - {name: d, role: decode, port: 9003}\n"
        expect(twice, .duplicateName, line: 6, mentions: ["workers[1].name 'd'", "line 5"])
        expect("\(router)\nworkers:\n  - {name: Decode_0, role: decode, port: 9002}\n", .invalidValue, line: 5,
               mentions: ["workers[0].name", "a-z, 0-9", "'Decode_0'"])
    }

    @Test func portsAreUniquePerHost() {
        let onRPC = "\(router)\nworkers:\n  - name: d\n    role: decode\n    port: 9001\n"
        expect(onRPC, .duplicatePort, line: 7, column: 11, mentions: ["workers[0].port 9001", "the router's RPC port (line 3)"])
        expect("router:\n  port: 9000\n  rpc_port: 9000\n", .duplicatePort, line: 3, mentions: ["router.rpc_port", "HTTP port (line 2)"])
        let localhost = """
            \(router)
            workers:
              - {name: a, role: decode, port: 9002}
              - {name: b, role: decode, port: 9002, host: localhost}
            """
        expect(localhost, .duplicatePort, line: 6, mentions: ["workers[1].port 9002 on localhost", "worker a (line 5)"])
    }

    @Test func aMissingModelFileIsNamed() {
        expect("model: /no/such/dir/model.gguf\n\(router)\n", .modelNotFound, line: 1, column: 8,
               mentions: ["'/no/such/dir/model.gguf' does not exist"])
    }

    @Test func someWorkerMustDecode() {
        expect("\(router)\nworkers:\n  - {name: p, role: prefill, port: 9002}\n", .noDecodeWorker, line: 4,
               mentions: ["decode or mixed"])
    }

    @Test func badCPUListsAreRejected() {
        for cpus in ["3-1", "0,,1", "a", "1-", "-1"] {
            expect("\(router)\nworkers:\n  - name: d\n    role: decode\n    port: 9002\n    cpus: \"\(cpus)\"\n", .invalidValue, line: 8,
                   mentions: ["workers[0].cpus", "'\(cpus)'"])
        }
    }

    @Test func anUnreadableFileHasNoLine() throws {
        do {
            _ = try ClusterConfig.load(path: "/no/such/cluster.yaml")
            Issue.record("a missing file loaded")
        } catch {
            #expect(error.kind == .unreadable && error.line == 0)
            #expect(error.description.hasPrefix("/no/such/cluster.yaml: cannot read"))
        }
    }

    @Test func theDescriptionIsFileLineColumnMessage() throws {
        let error = try #require(failure("router:\n  port: 70000\n  rpc_port: 9001\n"))
        #expect(error.description == "cluster.yaml:2:9: router.port must be between 1 and 65535, got 70000")
    }
}
