import LoomCluster
import LoomEngine
import LoomProtocol
@testable import LoomRouter
import LoomWire
import Testing

/// The router's retry decisions, driven without sockets or clocks through
/// every failure path `ClusterBackend` meets.
@Suite struct RequestAttemptsTests {
    let d0 = WorkerID("decode-0"), d1 = WorkerID("decode-1"), p0 = WorkerID("prefill-0")

    @Test func theFirstAttemptRoutesAtOnceWithNothingExcluded() {
        var attempts = RequestAttempts()
        #expect(attempts.next(delivered: 0, maxTokens: 8) == .route(excluding: []))
    }

    @Test func aFailedWorkerIsExcludedAndTheRetryWaitsFirst() {
        var attempts = RequestAttempts(backoff: Backoff(base: .milliseconds(10), cap: .milliseconds(200)))
        _ = attempts.next(delivered: 0, maxTokens: 8)
        #expect(attempts.failed(.failed(d0, "connection closed"), delivered: 3, maxTokens: 8) == .wait(.milliseconds(10)))
        #expect(attempts.next(delivered: 3, maxTokens: 8) == .route(excluding: [d0]))
        #expect(attempts.failed(.busy(d1, "queue full"), delivered: 3, maxTokens: 8) == .wait(.milliseconds(20)))
        #expect(attempts.next(delivered: 3, maxTokens: 8) == .route(excluding: [d0, d1]))
    }

    @Test func afterTheLastAttemptBusyWorkersAreA429AndFailedOnesA503() {
        for (failure, code) in [(AttemptError.busy(d0, "full"), SchedulerError.Code.overloaded), (.failed(d0, "gone"), .unavailable)] {
            var attempts = RequestAttempts(maxAttempts: 1)
            _ = attempts.next(delivered: 0, maxTokens: 8)
            guard case .fail(let error) = attempts.failed(failure, delivered: 0, maxTokens: 8) else {
                Issue.record("expected the request to fail after its one attempt")
                continue
            }
            #expect(error.code == code)
            #expect(error.message.contains("decode-0"), "the last worker tried is named: \(error.message)")
        }
    }

    @Test func aRefusalEndsTheRequestAtOnceWithItsOwnReason() {
        var attempts = RequestAttempts()
        _ = attempts.next(delivered: 0, maxTokens: 8)
        let refusal = SchedulerError(.contextOverflow, "the prompt is longer than the context")
        #expect(attempts.failed(.refused(refusal), delivered: 0, maxTokens: 8) == .fail(refusal))
        #expect(attempts.excluded.isEmpty)
    }

    @Test func noRouteBeforeAnyFailureSaysToStartADecodeWorker() {
        var attempts = RequestAttempts()
        _ = attempts.next(delivered: 0, maxTokens: 8)
        guard case .fail(let error) = attempts.noRoute() else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .unavailable)
        #expect(error.message.contains("loom worker --role decode"))
    }

    @Test func noRouteAfterAFailureReportsThatFailure() {
        var attempts = RequestAttempts()
        _ = attempts.next(delivered: 0, maxTokens: 8)
        _ = attempts.failed(.busy(d0, "queue full"), delivered: 0, maxTokens: 8)
        _ = attempts.next(delivered: 0, maxTokens: 8)
        #expect(attempts.noRoute() == .fail(attempts.exhausted))
        #expect(attempts.exhausted.code == .overloaded)
    }

    @Test func aStreamCutAfterItsLastTokenOnlyNeedsItsFinish() {
        var attempts = RequestAttempts()
        _ = attempts.next(delivered: 0, maxTokens: 4)
        #expect(attempts.failed(.failed(d0, "cut"), delivered: 4, maxTokens: 4) == .finishAtLength)
    }

    @Test func backoffDoublesUpToItsCap() {
        let backoff = Backoff(base: .milliseconds(10), cap: .milliseconds(50))
        #expect((0...5).map { backoff.delay(beforeRetry: $0) } == [.zero, .milliseconds(10), .milliseconds(20), .milliseconds(40), .milliseconds(50), .milliseconds(50)])
    }
}

/// Who is blamed for each step's failures, from the errors workers send.
@Suite struct AttemptStepTests {
    let d0 = WorkerID("decode-0"), p0 = WorkerID("prefill-0")

    static func refusal(_ code: SchedulerError.Code) -> WireError { WireError(SchedulerError(code, "\(code)")) }
    /// What a prefill worker sends when its KV write into the decode worker failed.
    static let transfer = WireError(WireError.Code(rawValue: WireError.Space.transfer.lowerBound + 8), "refused: the lease expired")

    @Test func busyDisaggregationFallsBackToALocalPrefill() {
        #expect(AttemptStep.reserve(decode: d0).outcome(of: Self.refusal(.overloaded)) == .prefillLocally)
        #expect(AttemptStep.prefill(prefill: p0, decode: d0).outcome(of: Self.refusal(.overloaded)) == .prefillLocally)
    }

    @Test func aBusyDecodeWorkerIsBusyNotFailed() {
        #expect(AttemptStep.relay(d0).outcome(of: Self.refusal(.overloaded)) == .attempt(.busy(d0, "overloaded")))
    }

    @Test func aDrainingWorkerPassesTheRequestOn() {
        #expect(AttemptStep.relay(d0).outcome(of: Self.refusal(.unavailable)) == .attempt(.busy(d0, "unavailable")))
        #expect(AttemptStep.prefill(prefill: p0, decode: d0).outcome(of: Self.refusal(.unavailable)) == .prefillLocally)
    }

    @Test func aDecodeWorkersRefusalEndsTheRequest() {
        let refusal = Self.refusal(.contextOverflow)
        let expected = AttemptStep.Outcome.attempt(.refused(SchedulerError(.contextOverflow, "contextOverflow")))
        #expect(AttemptStep.reserve(decode: d0).outcome(of: refusal) == expected)
        #expect(AttemptStep.relay(d0).outcome(of: refusal) == expected)
    }

    @Test func aPrefillWorkersRefusalLeavesThePromptToTheDecodeWorker() {
        // The decode worker took the request; a smaller prefill worker may not.
        for code in [SchedulerError.Code.contextOverflow, .exceedsKVCapacity, .overloaded] {
            #expect(AttemptStep.prefill(prefill: p0, decode: d0).outcome(of: Self.refusal(code)) == .prefillLocally, "\(code)")
        }
    }

    @Test func aFailedKVWriteBlamesTheDecodeWorkerNotThePrefillWorker() {
        #expect(AttemptStep.prefill(prefill: p0, decode: d0).outcome(of: Self.transfer) == .attempt(.failed(d0, "refused: the lease expired")))
    }

    @Test func aBrokenConnectionBlamesTheWorkerOnItsEnd() {
        let closed = WireError(.connectionClosed, "closed")
        #expect(AttemptStep.prefill(prefill: p0, decode: d0).outcome(of: closed) == .attempt(.failed(p0, "closed")))
        #expect(AttemptStep.reserve(decode: d0).outcome(of: closed) == .attempt(.failed(d0, "closed")))
        #expect(AttemptStep.relay(d0).outcome(of: WireError(.deadlineExceeded, "late")) == .attempt(.failed(d0, "late")))
    }

    @Test func anErrorThatIsNotFromTheWireStillBlamesTheWorker() {
        struct Garbled: Error {}
        guard case .attempt(.failed(let worker, _)) = AttemptStep.relay(d0).outcome(of: Garbled()) else {
            Issue.record("expected a failure blamed on the worker")
            return
        }
        #expect(worker == d0)
    }

    @Test func remoteFailuresAreDecodedFromTheirCodeSpaces() {
        #expect(RemoteFailure(Self.transfer) == .transfer(Self.transfer))
        #expect(RemoteFailure(Self.refusal(.overloaded)) == .refused(SchedulerError(.overloaded, "overloaded")))
        #expect(RemoteFailure(WireError(.keepaliveTimeout, "silent")).brokeTheConnection)
        #expect(!RemoteFailure(WireError(.handlerFailed, "boom")).brokeTheConnection)
    }
}
