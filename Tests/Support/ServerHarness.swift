import Foundation
import Logging
import MBData
import MBDataServer
import ServiceLifecycle
import Synchronization

/// The digits dataset ingested into a temporary folder.
public func digitsDataset(_ directory: TemporaryDirectory) async throws -> String {
    let path = directory.path("digits.mbdb")
    var options = IngestOptions()
    options.validationFraction = 0.2
    _ = try await Dataset.ingest(
        into: path, SourceSpec(paths: [samplePath("digits/digits.jsonl")]),
        schema: try Schema(contentsOf: samplePath("digits/digits.schema.json")), options: options)
    return path
}

/// Runs a daemon on a free 127.0.0.1 port while `body` runs, then stops it: the in-process
/// server harness of every test target.
public func withServer<T: Sendable>(
    _ configuration: ServeConfiguration, _ body: @escaping @Sendable (_ url: String) async throws -> T
) async throws -> T {
    try await withServer(configuration, clock: .continuous, body)
}

/// `withServer` whose daemon's leases expire on `clock` (a manual one moves without sleeping),
/// on `port` (0: a free one).
package func withServer<T: Sendable>(
    _ configuration: ServeConfiguration, clock: ServeClock, port: Int = 0,
    _ body: @escaping @Sendable (_ url: String) async throws -> T
) async throws -> T {
    try await withServer(configuration, clock: clock, port: port) { _, url in try await body(url) }
}

/// `withServer` whose body also gets the daemon, so a test can reach its state store as
/// another daemon sharing it would.
package func withServer<T: Sendable>(
    _ configuration: ServeConfiguration, clock: ServeClock, port: Int = 0,
    _ body: @escaping @Sendable (_ server: BatchServer, _ url: String) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.port = port
    let logger = harnessLogger()
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let server = try await BatchServer(configuration: configuration, logger: logger, clock: clock) { continuation.yield($0) }
    // The daemon in a service group of its own, as an application would run it; no signals.
    let services = ServiceGroup(configuration: .init(services: [server], logger: logger))
    return try await withThrowingTaskGroup(of: HarnessEvent<T>.self) { group in
        group.addTask {
            try await services.run()
            return .stopped
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        group.addTask { .finished(try await body(server, "http://127.0.0.1:\(port)")) }
        var result: T?
        while let next = try await group.next() {
            switch next {
            case .finished(let value):
                result = value
                // A graceful shutdown, as SIGTERM gives the daemon: cancelling the server's task
                // instead can leave an accepted connection that nobody closes, which traps in
                // NIO ("Deinited NIOAsyncWriter without calling finish()", apple/swift-nio#3481).
                await services.triggerGracefulShutdown()
                group.addTask {
                    try? await Task.sleep(for: .seconds(60))
                    return .shutdownTimedOut
                }
            case .stopped, .shutdownTimedOut:
                group.cancelAll()
            }
        }
        return result!
    }
}

/// The daemons' logger: silent, or on stderr at the level `MBDATA_TEST_LOG` names (`debug`,
/// `info`…), each daemon's lines tagged with its own number.
private func harnessLogger() -> Logger {
    guard let name = ProcessInfo.processInfo.environment["MBDATA_TEST_LOG"], let level = Logger.Level(rawValue: name) else {
        return Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    }
    var logger = Logger(label: "test-daemon") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = level
    logger[metadataKey: "daemon"] = "\(harnessDaemons.add(1, ordering: .relaxed).newValue)"
    return logger
}

private let harnessDaemons = Atomic<Int>(0)

/// What ends each task of ``withServer``.
private enum HarnessEvent<T: Sendable>: Sendable {
    case finished(T)
    case stopped
    case shutdownTimedOut
}
