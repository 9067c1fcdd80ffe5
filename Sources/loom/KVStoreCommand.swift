import ArgumentParser
import Foundation
import Logging
import LoomCluster
import LoomEngine
import LoomHTTP
import LoomKVStore
import LoomModel
import LoomProtocol
import LoomWire
import ServiceLifecycle

struct KVStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore",
        abstract: "Run one KV-cache store node of a Loom cluster: a DRAM tier of KV blocks that workers put and get over the transfer layer, and a disk tier below it.")

    @OptionGroup var member: MemberOptions

    @Option(name: .long, help: "DRAM for KV blocks, in MiB (default: 256).")
    var dramMib: Int?

    @Option(name: .long, help: "Folder for the disk tier's block files (default: no disk tier). A node restarted with the same folder serves its blocks again.")
    var diskDir: String?

    @Option(name: .long, help: "Disk for KV blocks, in GiB (default: 16; needs --disk-dir).")
    var diskGib: Double?

    @Option(name: .long, help: "Which blocks the disk tier keeps: after-first-reuse (the default: blocks read back at least once, written at that read) or all (also every block DRAM lets go of).")
    var admission: DiskAdmission?

    @Option(name: .long, help: "Seconds a put's reserved slots wait for their commit before they are reclaimed.")
    var leaseSeconds = 30

    @Flag(name: .long, help: "Serve without a router: no registration, no heartbeats (`loom bench kvstore` starts one this way).")
    var standalone = false

    func validate() throws {
        _ = try settings()
        try Limits.checkForCommandLine(leaseSeconds, in: Limits.leaseSeconds, "--lease-seconds")
    }

    func settings() throws -> (store: StoreNodeConfig, router: RPCAddress?, model: String?, admission: DiskAdmission) {
        if standalone && member.config != nil {
            throw ValidationError("--standalone serves without a router, and a config always names one; leave out --standalone or --config")
        }
        if let cluster = try member.cluster(refusing: [("--dram-mib", dramMib), ("--disk-dir", diskDir), ("--disk-gib", diskGib), ("--admission", admission)]) {
            guard let store = cluster.kvstores.first(where: { $0.name == member.name }) else {
                throw ValidationError("\(cluster.file) has no store node named '\(member.name)' under kvstores; it has \(cluster.kvstores.map(\.name).joined(separator: ", "))")
            }
            return (store, cluster.router.rpcAddress, cluster.model, cluster.kvstore.admission)
        }
        if standalone && member.router != nil { throw ValidationError("--standalone serves without a router; leave --router out") }
        let router = standalone ? nil : try member.requiredRouter()
        if let port = member.port { try Limits.checkForCommandLine(port, in: 0...Limits.ports.upperBound, "--port") }
        if let dramMib { try Limits.checkForCommandLine(dramMib, in: Limits.dramMiB, "--dram-mib") }
        if diskGib != nil && diskDir == nil { throw ValidationError("--disk-gib sizes the disk tier; give its folder with --disk-dir too") }
        if let diskGib { try Limits.checkForCommandLine(diskGib, in: Limits.diskGiB, "--disk-gib") }
        var store = StoreNodeConfig(name: member.name, port: member.port ?? 0, dramMiB: dramMib ?? 256, diskDir: diskDir)
        if let diskGib { store.diskGiB = diskGib }
        if let host = member.host { store.host = host }
        return (store, router, member.model, admission ?? .afterFirstReuse)
    }

    func run() async throws {
        var logger = Logger(label: "loom.kvstore.\(member.name)")
        logger.logLevel = .info
        let (settings, routerAddress, configuredModel, admission) = try settings()
        // A disk over its file-size limit must fail the write, not the node.
        signal(SIGXFSZ, SIG_IGN)
        let path: String
        do { path = try ModelLocator.resolve(configuredModel) } catch let error as GGUFError { throw ValidationError(error.message) }
        let modelConfig = try ModelConfig(gguf: GGUFFile(path: path))
        let modelName = ServedModel.defaultName(path: path)
        let layout = StoredLayout(modelConfig)
        let epoch = processEpoch()
        let configuration = StoreConfiguration(
            name: settings.name, host: settings.host, port: settings.port,
            slots: StoreConfiguration.slots(dramMiB: settings.dramMiB, layout: layout),
            modelID: BlockHasher(modelName: modelName).modelID, layout: layout, lease: .seconds(leaseSeconds),
            disk: settings.diskDir.map { ($0, Int(settings.diskGiB * Double(1 << 30))) }, admission: admission)
        let store = try KVStoreNode(configuration: configuration, epoch: epoch, logger: logger)
        let server = try await RPCServer.bind(.tcp(host: settings.host, port: settings.port), services: store.services, configuration: store.rpcConfiguration)
        guard case .tcp(_, let boundPort) = server.localAddress else { return }
        store.advertise(port: boundPort)
        let link = routerAddress.map { RouterLink(router: $0, member: StoreMembership(store: store, modelName: modelName), logger: logger) }
        announce("loom kvstore: \(settings.name) listening on \(settings.host):\(boundPort) router=\(routerAddress?.hostPort ?? "none") slots=\(configuration.slots) (\(layout.payloadBytes) bytes each)\(diskBanner(store))")
        let service = KVStoreService(store: store, server: server, link: link, logger: logger)
        try await ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
    }

    private func diskBanner(_ store: KVStoreNode) -> String {
        guard let disk = store.disk else { return "" }
        let tier = disk.snapshot
        return " disk=\(disk.directory) (\(tier.blocks) blocks found, \(disk.capacityBytes >> 20) MiB)\(tier.problem.map { ": \($0)" } ?? "")"
    }
}
extension DiskAdmission: ExpressibleByArgument {}
