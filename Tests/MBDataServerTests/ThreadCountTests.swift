import Foundation
import MBData
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@testable import MBDataServer

/// The daemon's threads do not grow with its streams: every stream's batches are prepared on
/// the one process-wide blocking executor, and a stream waiting for a batch holds no thread.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/task"), "needs /proc/self/task (Linux)"))
struct ThreadCountTests {
    static let streams = 64

    /// Threads of this process now.
    static func threadCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
    }

    #if canImport(Glibc)
        @Test func sixtyFourOpenStreamsAddNoThreadPerStream() async throws {
            let directory = try TemporaryDirectory()
            let path = try await blobDataset(directory)
            var configuration = ServeConfiguration(datasets: [("blobs", path)], state: directory.path("state.sqlite"))
            configuration.maxStreams = Self.streams
            // As `mbdata serve` sets it: every stream may use the whole executor.
            configuration.prefetch.workers = BlockingExecutor.threadCount
            let (before, during) = try await withServer(configuration) { url in
                let port = try #require(URL(string: url)?.port)
                let before = try Self.threadCount()
                let sockets = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Int32], any Error>) in
                    // Blocking sockets on a thread of the test's own, never on the executor the
                    // daemon prepares the batches on.
                    Thread {
                        continuation.resume(
                            with: Result {
                                try (0..<Self.streams).map { stream in
                                    try openUnreadStream(
                                        port: port, target: "/v1/datasets/blobs/batches?batch_size=16&seed=7&epoch=0&group=g\(stream)")
                                }
                            })
                    }.start()
                }
                defer { for socket in sockets { close(socket) } }
                return (before, try Self.threadCount())
            }
            // The constant: the cooperative pool's threads, which may not all have started
            // before the streams (one per core), and 4 for threads that come and go whatever
            // the load — GRDB's writer and the state database's queue on a dispatch thread, the
            // test's socket thread while it exits.
            let constant = ProcessInfo.processInfo.activeProcessorCount + 4
            #expect(
                during <= before + constant,
                "\(during) threads with \(Self.streams) streams open, \(before) before them (executor: \(BlockingExecutor.threadCount) threads)")
        }
    #endif
}
