import LoomCluster
import LoomEngine
import LoomModel
import LoomProtocol
import LoomWire
import Logging

/// The router's `GenerationBackend`: each request is routed to a decode
/// worker (and, when worth it, a prefill worker that writes the prompt's
/// KV into it), and the decode worker's tokens stream back. If a worker
/// fails, the request continues elsewhere from the tokens already
/// delivered, so the client sees one unbroken stream; if no worker can
/// take it, the client gets an explicit error. Nothing waits forever.
public final class ClusterBackend: GenerationBackend {
    public let state: ClusterState
    let connections: KeptOpen<RPCAddress, RPCConnection>
    let logger: Logger
    let maxAttempts: Int
    /// Backoff waits go through it, so tests can pass time by hand.
    let clock: any Clock<Duration>
    /// Reservations to hand back, served by `run()` so no request waits on
    /// them and none is lost to a request's cancellation.
    let releases: AsyncStream<Release>
    let releaseQueue: AsyncStream<Release>.Continuation
    /// How long a decode worker waits for the prefill's writes to land
    /// after the prefill call returned (they are acknowledged by then).
    let attachTimeout: Duration = .seconds(30)

    public init(state: ClusterState, rpc: RPCConfiguration, logger: Logger, maxAttempts: Int = 3, clock: any Clock<Duration> = ContinuousClock()) {
        self.state = state
        self.logger = logger
        self.maxAttempts = maxAttempts
        self.clock = clock
        (releases, releaseQueue) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(4096))
        connections = KeptOpen { address, body in
            try await RPCConnection.withConnection(to: address, configuration: rpc) { try await body($0) }
        }
    }

    public func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationOutput, Error> {
        let (stream, continuation) = AsyncThrowingStream<GenerationOutput, Error>.makeStream()
        let task = Task { await self.serve(request, continuation) }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    public var snapshot: EngineSnapshot { state.aggregateSnapshot }

    /// Hands reservations back until cancelled (the router runs it beside
    /// its servers). A release that is lost costs nothing: the lease
    /// returns the blocks anyway.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await release in releases {
                group.addTask { await self.perform(release) }
            }
        }
    }

    public func shutdown() {
        releaseQueue.finish()
        connections.closeAll()
    }

    /// Closes the connection to a worker declared dead, which fails every
    /// call still waiting on it (a hung worker never answers), so those
    /// requests move elsewhere instead of waiting out their deadlines.
    public func disconnect(_ address: RPCAddress) {
        connections.drop(address)
    }

    /// Runs the request's attempts as `RequestAttempts` directs, until one
    /// finishes it or none is left.
    private func serve(_ request: GenerationRequest, _ continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation) async {
        var progress = RequestProgress(request)
        var attempts = RequestAttempts(maxAttempts: maxAttempts)
        var action = attempts.next(delivered: 0, maxTokens: request.maxTokens)
        while true {
            switch action {
            case .route(let excluded):
                guard let route = state.route(progress.prompt, in: progress.request.cacheNamespace, excluding: excluded) else {
                    action = attempts.noRoute()
                    continue
                }
                do {
                    try await attempt(route, &progress, continuation)
                    return
                } catch let failure as AttemptError where !Task.isCancelled {
                    action = attempts.failed(failure, delivered: progress.generated.count, maxTokens: request.maxTokens)
                    if case .wait = action {
                        logger.warning("request moves off a failed worker", metadata: [
                            "failure": "\(failure)", "tokens_delivered": "\(progress.generated.count)"])
                        state.countDecision(.retry)
                    }
                } catch {
                    // Cancelled: the client left, and nobody reads the stream.
                    return Task.isCancelled ? continuation.finish() : continuation.finish(throwing: error)
                }
            case .wait(let delay):
                do { try await clock.sleep(for: delay) } catch { return continuation.finish() }
                action = attempts.next(delivered: progress.generated.count, maxTokens: request.maxTokens)
            case .finishAtLength:
                continuation.yield(.finished(.length, progress.usage(nil)))
                return continuation.finish()
            case .fail(let error):
                return continuation.finish(throwing: error)
            }
        }
    }

    /// One try on one route. Throws `AttemptError` when it did not finish
    /// the request, `CancellationError` when the client left.
    private func attempt(
        _ route: Route, _ progress: inout RequestProgress, _ continuation: AsyncThrowingStream<GenerationOutput, Error>.Continuation
    ) async throws {
        state.started(on: route.decode.id)
        defer { state.finished(on: route.decode.id) }
        let spec = progress.spec
        let outcome = if let prefill = route.prefill {
            try await prefillRemotely(spec, on: prefill, into: route.decode)
        } else {
            PrefillOutcome.local
        }
        switch outcome {
        case .local:
            try await relay(ClusterRPC.generate.id, spec, from: route.decode, &progress, continuation)
        case .finished(let reservation, let finished):
            // The prefill's first token was a stop token: nothing to decode,
            // and the decode worker's blocks can go back at once.
            release(reservation, on: route.decode)
            if case .finished(let reason, let usage) = finished.output {
                continuation.yield(.finished(reason, progress.usage(usage)))
            }
            continuation.finish()
        case .ready(let reservation, let response):
            // If the client leaves before the attach arrives, the
            // reservation would otherwise wait out its lease.
            if Task.isCancelled { return release(reservation, on: route.decode) }
            // The client sees the first token now, not after it has been to
            // the decode worker and back; the attach stream repeats it.
            if case .token(let token, let logprob, let top) = response.first.output {
                progress.generated.append(token)
                continuation.yield(.token(token, logprob: logprob, top: top))
            }
            var attach = Loom_Cluster_AttachRequest()
            attach.requestID = reservation.requestID
            attach.first = response.first
            attach.expectedWrites = response.writes
            attach.timeoutMs = UInt32(clamping: attachTimeout.wholeMilliseconds)
            try await relay(ClusterRPC.attach.id, attach, from: route.decode, &progress, continuation, alreadyDelivered: 1)
        }
    }
}

/// A reservation to hand back to the decode worker holding it.
struct Release: Sendable {
    var reservation: UInt64
    var decode: Route.Target
}

/// What a request has produced so far, so that a retry continues it: the
/// tokens already delivered become part of the prompt.
struct RequestProgress {
    let request: GenerationRequest
    let jsonMode: Bool
    var generated: [TokenID] = []
    var cachedPromptTokens: Int?

    init(_ request: GenerationRequest) {
        self.request = request
        jsonMode = request.constraint != nil
    }

    var prompt: [TokenID] { request.prompt + generated }

    var spec: Loom_Cluster_GenerationSpec {
        var resumed = request
        resumed.prompt = prompt
        resumed.maxTokens = request.maxTokens - generated.count
        resumed.resumedTokens = request.resumedTokens + generated.count
        return Loom_Cluster_GenerationSpec(resumed, jsonMode: jsonMode)
    }

    /// The usage of the whole request, whatever attempt finished it. A
    /// retry's prompt includes generated tokens, so its cache figure is
    /// capped at the original prompt.
    func usage(_ reported: RequestUsage?) -> RequestUsage {
        RequestUsage(promptTokens: request.prompt.count, completionTokens: generated.count,
                     cachedPromptTokens: min(cachedPromptTokens ?? reported?.cachedPromptTokens ?? 0, request.prompt.count))
    }
}
