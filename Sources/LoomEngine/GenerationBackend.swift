/// Whatever turns prompts into token streams behind the HTTP API: one
/// in-process engine (`loom serve`) or a cluster of remote workers (the
/// router). The HTTP layer sees only this.
public protocol GenerationBackend: Sendable {
    /// Starts a generation. The stream ends with `.finished`, or throws if
    /// the request is refused; dropping the stream cancels the request.
    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationOutput, Error>
    /// Load as of now, for the running/waiting/KV gauges.
    var snapshot: EngineSnapshot { get }
}

extension InferenceEngine: GenerationBackend {}
