/// Produces `count` results as jobs on the process-wide `BlockingExecutor` (at most
/// `workers` at once) and hands them out in index order, at most `depth` ahead of the
/// consumer: the prefetcher's machinery for any output — the serve daemon uses it to build
/// whole wire messages off the event loop.
package final class OrderedPrefetch<Output: Sendable>: Sendable {
    private let pool: OrderedWorkPool<Output>

    /// `produce(index)` runs on a thread of the blocking executor and may block.
    package init(count: Int, workers: Int, depth: Int, produce: @escaping @Sendable (Int) throws -> Output) {
        pool = OrderedWorkPool(count: count, workers: workers, depth: depth, produce: produce)
    }

    deinit { pool.requestStop() }

    /// The results in order; the first worker failure is rethrown.
    package func results() -> some AsyncSequence<Output, any Error> { pool.stream() }

    /// Results produced and waiting for the consumer.
    package var readyCount: Int { pool.readyCount }

    /// Stops production and suspends until no job of this prefetch runs.
    package func stop() async { await pool.shutDown() }
}
