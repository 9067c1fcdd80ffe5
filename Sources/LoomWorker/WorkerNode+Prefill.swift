import LoomEngine
import LoomModel
import LoomProtocol
import LoomTransfer
import LoomWire
import NIOCore

extension WorkerNode {
    /// Computes the prompt (reusing this worker's own prefix cache), writes
    /// the blocks the decode worker lacks straight into its reserved blocks
    /// with one-sided writes carrying the reservation's immediate, and
    /// returns the first sampled token. The decode worker samples the rest.
    func prefill(_ wire: Loom_Cluster_PrefillRequest) async throws -> Loom_Cluster_PrefillResponse {
        let target = wire.target
        let received = ContinuousClock.now
        var request = request(wire.spec)
        request.maxTokens = 1
        request.exportKVFromBlock = Int(target.firstBlock)
        var response = Loom_Cluster_PrefillResponse()
        var exported: [UInt8]?
        do {
            for try await output in engine.generate(request) {
                switch output {
                case .kvBlocks(_, let bytes): exported = bytes
                case .token(let token, let logprob, let top): response.first = Loom_Cluster_Token(token, logprob: logprob, top: top)
                case .finished(let reason, let usage):
                    // The prompt tokens this worker's cache did not have.
                    response.computedTokens = UInt32(clamping: usage.promptTokens - usage.cachedPromptTokens)
                    // Only a stop token as the very first token ends the
                    // request here; otherwise decoding goes on remotely.
                    guard !response.hasFirst else { break }
                    guard reason == .stop else {
                        throw WireError(.handlerFailed, "the prefill ended as \(reason.rawValue) before its first token (is this worker shutting down?)")
                    }
                    response.finished = Loom_Cluster_Finished(reason, usage)
                }
            }
        } catch let error as SchedulerError {
            throw WireError(error)
        }
        guard response.hasFirst else { return response }
        guard let exported else {
            throw WireError(.handlerFailed, "the engine finished the prompt without exporting its KV blocks")
        }
        // Close to the lease's end the decode worker may free the blocks
        // while the bytes are on their way; better to fail than to land in
        // someone else's KV.
        guard ContinuousClock.now - received < .milliseconds(Int(target.leaseMs)) * 0.8 else {
            throw WireError(.deadlineExceeded, "the prefill took most of the decode worker's \(target.leaseMs) ms lease; not writing into blocks it may have reclaimed")
        }
        let start = ContinuousClock.now
        do {
            try await write(exported, into: target)
        } catch let error as TransferError {
            throw WireError(error)
        }
        response.transferMicros = UInt64(clamping: (ContinuousClock.now - start).wholeMicroseconds)
        response.transferBytes = UInt64(exported.count)
        response.writes = 1
        return response
    }

    private func write(_ bytes: [UInt8], into target: Loom_Cluster_Reservation) async throws {
        let pageLength = Int(target.bytesPerBlock)
        guard pageLength == engine.kvLayout.bytesPerBlock else {
            throw WireError(.handlerFailed, "the decode worker's KV blocks are \(pageLength) bytes but ours are \(engine.kvLayout.bytesPerBlock); are both serving the same model?")
        }
        let region: RegionDescriptor
        do {
            region = try RegionDescriptor(serialized: [UInt8](target.region))
        } catch {
            throw WireError(.badMessage, "the reservation's region descriptor does not decode (\(error)); is the decode worker the same Loom version?")
        }
        let operation = try WriteOperation.pages(
            of: ByteBuffer(bytes: bytes), pageLength: pageLength, to: region,
            pages: target.blocks.map { Int($0) }, stride: pageLength, immediate: target.immediate)
        let address = RPCAddress.tcp(host: target.transferHost, port: Int(target.transferPort))
        let backend: PeerTransports.Backend =
            if region.backendKeys[FabricTarget.backendKey] != nil { .fabric }
            else if target.hostID == HostIdentity.current && region.backendKeys[SharedMemoryRegion.backendKey] != nil { .shm }
            else { .tcp }
        try await peers.withTransport(to: address, over: backend) { try await $0.write(operation) }
        switch backend {
        case .shm: shmWrites.add(1, ordering: .relaxed)
        case .tcp: tcpWrites.add(1, ordering: .relaxed)
        case .fabric: fabricWrites.add(1, ordering: .relaxed)
        }
        kvBlocksSent.add(UInt64(target.blocks.count), ordering: .relaxed)
    }
}
