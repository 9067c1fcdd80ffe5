import ArgumentParser
import NIOCore
import NIOPosix

/// Mirrors `loom bench rpc --nio-executor`, so both sides of the comparison can run
/// with the same executor.
struct ExecutorOption: ParsableArguments {
    @Flag(help: "Run Swift tasks on NIO's event loop threads instead of the global concurrency pool.")
    var nioExecutor = false

    func install() {
        guard nioExecutor else { return }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
