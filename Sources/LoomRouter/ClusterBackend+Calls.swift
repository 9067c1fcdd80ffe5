import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomWire
import SwiftProtobuf

enum PrefillOutcome {
    /// The decode worker prefills itself (it could not reserve blocks now,
    /// or the prefill worker was overloaded); it queues the request.
    case local
    /// The request ended with the prefill's first token.
    case finished(Loom_Cluster_Reservation, Loom_Cluster_Finished)
    /// The KV is in the decode worker's reserved blocks.
    case ready(Loom_Cluster_Reservation, Loom_Cluster_PrefillResponse)
}

extension ClusterBackend {
    /// Reserves blocks on the decode worker, has the prefill worker fill
    /// them, and reports the first token. A reservation whose prefill
    /// failed is released at once rather than left to its lease.
    func prefillRemotely(_ spec: Loom_Cluster_GenerationSpec, on prefill: Route.Target, into decode: Route.Target) async throws -> PrefillOutcome {
        let reservation: Loom_Cluster_Reservation
        do {
            reservation = try await call(decode) { try await $0.unary(ClusterRPC.reserve, spec, timeout: .seconds(10)).0 }
        } catch {
            // A reserve that timed out or failed may have left blocks held;
            // the lease returns them.
            return try Self.resolve(error, in: .reserve(decode: decode.id))
        }
        var request = Loom_Cluster_PrefillRequest()
        request.spec = spec
        request.target = reservation
        do {
            // Past the lease the decode worker may have handed the blocks
            // to someone else; the prefill worker checks it too.
            let lease = Duration.milliseconds(Int(reservation.leaseMs))
            let response = try await call(prefill) { try await $0.unary(ClusterRPC.prefill, request, timeout: lease).0 }
            state.metrics?.transferred(blocks: reservation.blocks.count, bytes: Int(clamping: response.transferBytes), microseconds: response.transferMicros)
            return response.hasFirst ? .ready(reservation, response) : .finished(reservation, response.finished)
        } catch {
            release(reservation, on: decode)
            if Task.isCancelled { throw CancellationError() }
            return try Self.resolve(error, in: .prefill(prefill: prefill.id, decode: decode.id))
        }
    }

    private static func resolve(_ error: Error, in step: AttemptStep) throws -> PrefillOutcome {
        switch step.outcome(of: error) {
        case .prefillLocally: return .local
        case .attempt(let failure): throw failure
        }
    }

    /// Queued for `run()`: the request's task may be cancelled, and the
    /// lease returns the blocks anyway if this is lost.
    func release(_ reservation: Loom_Cluster_Reservation, on decode: Route.Target) {
        releaseQueue.yield(Release(reservation: reservation.requestID, decode: decode))
    }

    func perform(_ release: Release) async {
        var request = Loom_Cluster_AttachRequest()
        request.requestID = release.reservation
        _ = try? await call(release.decode) { try await $0.unary(ClusterRPC.release, request, timeout: .seconds(2)) }
    }

    /// Streams a worker's token events to the client. Returns once the
    /// request finished; a stream that breaks first is that worker's failure.
    /// The stream's first `alreadyDelivered` tokens reached the client
    /// another way and are not sent again.
    func relay(
        _ method: UInt32, _ message: some SwiftProtobuf.Message, from worker: Route.Target,
        _ progress: inout RequestProgress, _ continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation,
        alreadyDelivered: Int = 0
    ) async throws {
        let finished: Bool
        var skip = alreadyDelivered
        do {
            finished = try await call(worker) { connection in
                try await connection.serverStreaming(method: method, try RPCMessage(message)) { items in
                    for try await item in items {
                        switch try item.decode(Loom_Cluster_TokenEvent.self).output {
                        case .token where skip > 0:
                            skip -= 1
                        case .token(let token, let logprob, let top):
                            progress.generated.append(token)
                            continuation.yield(.token(token, logprob: logprob, top: top))
                        case .finished(let reason, let usage):
                            continuation.yield(.finished(reason, progress.usage(usage)))
                            continuation.finish()
                            return true
                        case nil:
                            continue
                        }
                    }
                    return false
                }
            }
        } catch {
            if Task.isCancelled { throw CancellationError() }
            guard case .attempt(let failure) = AttemptStep.relay(worker.id).outcome(of: error) else { throw error }
            throw failure
        }
        if !finished {
            throw AttemptError.failed(worker.id, "the stream ended without finishing the request")
        }
    }

    /// A call on the kept connection to `worker`. A connection that broke
    /// is dropped (the next call reconnects); a refused call leaves the
    /// connection to others.
    func call<T: Sendable>(_ worker: Route.Target, _ body: (RPCConnection) async throws -> T) async throws -> T {
        try await connections.withResource(worker.address, isBroken: Self.isBroken, body)
    }

    static func isBroken(_ error: Error) -> Bool {
        guard let wire = error as? WireError else { return false }
        return RemoteFailure(wire).brokeTheConnection
    }
}
