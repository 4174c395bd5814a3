import Dispatch
import HTTPTypes
import HummingbirdCore
import Logging
import MBDataTestSupport
import MBDataWire
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import MBData
@testable import MBDataServer

/// A batch stream never runs ahead of its connection's event loop: each message is written
/// only once the loop got past the one before, so the messages a daemon holds stay at the
/// prefetch depth however slowly the loop runs (the daemon's memory, Benchmarks/README.md).
@Suite struct StreamBackpressureTests {
    /// What a stream wrote: for each message, how many turns the test had let the
    /// connection's loop take when it was written; and each write as it happens.
    final class WriteLog: Sendable {
        let loopTurns = Atomic<Int>(0)
        let turnsAtWrite = Mutex<[Int]>([])
        let writes: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation

        init() {
            (writes, continuation) = AsyncStream.makeStream()
        }

        func record() {
            turnsAtWrite.withLock { $0.append(loopTurns.load(ordering: .acquiring)) }
            continuation.yield()
        }
    }

    /// A response body that records its writes in a ``WriteLog`` and, like a connection,
    /// leaves each on its event loop: a job there that waits until the test opens `gate`.
    struct RecordingWriter: ResponseBodyWriter {
        let log: WriteLog
        let loop: any EventLoop
        let gate: DispatchSemaphore

        mutating func write(_ buffer: ByteBuffer) async throws {
            let gate = self.gate
            loop.execute { gate.wait() }
            log.record()
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    /// The loop gets past a written message only when the test lets it: the stream writes
    /// its first batch, then waits for the loop; every later message is written after
    /// exactly one more turn — none while the loop stands still, which is when a daemon used
    /// to queue them all.
    @Test(.timeLimit(.minutes(1))) func aStreamWritesEachBatchOnlyAfterTheConnectionsLoopWroteThePreviousOne() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"))
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let metrics = ServeMetrics()
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = loops.next()
        let gate = DispatchSemaphore(value: 0)
        let batches = 6
        let prefetcher = OrderedPrefetch(count: batches, workers: 2, depth: 4) { index in
            OutgoingBatch(batches: [index], frameBytes: 8, uncompressedBytes: 8, message: ByteBuffer(integer: index))
        }
        let claim = try await StreamClaim(store: store, cursor: "c-test", holder: "test", seconds: 30, logger: logger)
        let sender = StreamSender(
            prefetcher: prefetcher, cursor: "c-test", dataset: "digits", mode: .partition, book: CursorBook(store: store, metrics: metrics),
            metrics: metrics, drain: DrainState(), claim: claim, connection: loop, logger: logger)
        let log = WriteLog()

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var writer: any ResponseBodyWriter = RecordingWriter(log: log, loop: loop, gate: gate)
                await sender.run(&writer)
            }
            var writes = log.writes.makeAsyncIterator()
            for turn in 1...batches {
                _ = await writes.next()
                log.loopTurns.store(turn, ordering: .releasing)
                gate.signal()
            }
            _ = await writes.next()  // the end message
            gate.signal()
            try await group.waitForAll()
        }
        #expect(log.turnsAtWrite.withLock { $0 } == Array(0...batches))
        try await loops.shutdownGracefully()
    }
}
