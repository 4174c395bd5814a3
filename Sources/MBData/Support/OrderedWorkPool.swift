import Dispatch
import Synchronization

/// Produces `count` items as jobs on the process-wide `BlockingExecutor`, at most `workers`
/// of them at once, and hands them out in index order, with at most `depth` items claimed
/// ahead of the consumer (back-pressure, bounded memory).
///
/// The pool owns no thread: a job produces one item and ends, and an async consumer waiting
/// for the next item suspends. The first error a job throws is rethrown to the consumer, and
/// no job starts after it. `stop()` ends production and waits until no job of the pool runs.
final class OrderedWorkPool<Output: Sendable>: Sendable {
    let count: Int
    private let workers: Int
    private let depth: Int
    private let produce: @Sendable (Int) throws -> Output
    private let state: Mutex<State>

    /// A suspended consumer, a suspended `shutDown()` or a blocked thread, to wake when the
    /// state it waits on changes; a woken consumer looks again.
    private enum Waiter: Sendable {
        case consumer(CheckedContinuation<Take, any Error>)
        case task(CheckedContinuation<Void, Never>)
        case thread(DispatchSemaphore)

        func wake() {
            switch self {
            case .consumer(let continuation): continuation.resume(returning: .pending)
            case .task(let continuation): continuation.resume()
            case .thread(let semaphore): semaphore.signal()
            }
        }
    }

    private struct State: ~Copyable {
        var ready: [Int: Output] = [:]
        var nextToClaim = 0
        var delivered = 0
        /// Jobs submitted to the executor that have not started.
        var queued = 0
        /// Jobs producing an item now.
        var running = 0
        var failure: (any Error)?
        var stopping = false
        /// Consumers waiting for the next item, a failure or the end.
        var consumers: [Waiter] = []
        /// Callers of `stop()` waiting until no job runs.
        var idle: [Waiter] = []

        let count: Int

        /// Whether a consumer waiting for the next item has something to act on.
        var consumerMayProceed: Bool {
            failure != nil || stopping || delivered >= count || ready[delivered] != nil
        }

        /// The waiters that may proceed now, no longer registered: the consumers when there
        /// is something to act on, the callers of `stop()` when no job runs.
        mutating func takeWaiters() -> [Waiter] {
            var woken: [Waiter] = []
            if consumerMayProceed {
                woken = consumers
                consumers = []
            }
            if running == 0 {
                woken += idle
                idle = []
            }
            return woken
        }
    }

    enum Take: Sendable {
        case item(Output)
        case end
        /// The next item is still being produced.
        case pending
    }

    init(count: Int, workers: Int, depth: Int, produce: @escaping @Sendable (Int) throws -> Output) {
        self.count = count
        self.workers = max(1, workers)
        self.depth = max(1, depth)
        self.produce = produce
        state = Mutex(State(count: count))
        launch()
    }

    /// Items produced and waiting for the consumer.
    var readyCount: Int { state.withLock { $0.ready.count } }

    /// Whether the pool was stopped (it then starts no job and hands out nothing more).
    var isStopping: Bool { state.withLock { $0.stopping } }

    // MARK: - Jobs

    /// Submits a job for every item that may be claimed now.
    private func launch() {
        let (workers, depth) = (self.workers, self.depth)
        let claimed: [Int] = state.withLock { state in
            var claimed: [Int] = []
            while !state.stopping, state.failure == nil, state.nextToClaim < count,
                state.nextToClaim < state.delivered + depth, state.queued + state.running < workers
            {
                claimed.append(state.nextToClaim)
                state.nextToClaim += 1
                state.queued += 1
            }
            return claimed
        }
        for index in claimed {
            BlockingExecutor.submit { self.runJob(index) }
        }
    }

    private func runJob(_ index: Int) {
        let starts = state.withLock { state in
            state.queued -= 1
            guard !state.stopping, state.failure == nil else { return false }
            state.running += 1
            return true
        }
        guard starts else { return }
        let result = Result { try produce(index) }
        let woken: [Waiter] = state.withLock { state in
            state.running -= 1
            switch result {
            case .success(let output):
                if !state.stopping { state.ready[index] = output }
            case .failure(let error):
                if state.failure == nil { state.failure = error }
            }
            return state.takeWaiters()
        }
        for waiter in woken { waiter.wake() }
        launch()
    }

    // MARK: - Consuming

    /// The next item, the end or the failure if one is there now; else registers `waiter`
    /// (when given) to be woken once there is something to act on.
    private func take(orWait waiter: Waiter?) throws -> Take {
        let take = try state.withLock { state throws -> Take in
            if let failure = state.failure { throw failure }
            if state.stopping || state.delivered >= count { return .end }
            guard let output = state.ready.removeValue(forKey: state.delivered) else {
                if let waiter { state.consumers.append(waiter) }
                return .pending
            }
            state.delivered += 1
            return .item(output)
        }
        if case .item = take { launch() }
        return take
    }

    /// The next item in order, nil after the last or once stopped; blocks the calling thread
    /// while the item is produced. Never call it from a job of the blocking executor.
    func next() throws -> Output? {
        while true {
            let semaphore = DispatchSemaphore(value: 0)
            switch try take(orWait: .thread(semaphore)) {
            case .item(let output): return output
            case .end: return nil
            case .pending: semaphore.wait()
            }
        }
    }

    /// The next item in order, nil after the last or once stopped; suspends while the item
    /// is produced. Cancelling the task stops the pool.
    private func nextItem() async throws -> Output? {
        if Task.isCancelled { requestStop() }
        var outcome = try take(orWait: nil)
        if case .pending = outcome {
            outcome = try await withTaskCancellationHandler {
                while true {
                    let next = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Take, any Error>) in
                        do {
                            let next = try self.take(orWait: .consumer(continuation))
                            if case .pending = next { return }
                            continuation.resume(returning: next)
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                    if case .pending = next { continue }
                    return next
                }
            } onCancel: {
                requestStop()
            }
        }
        switch outcome {
        case .item(let output):
            return output
        case .end, .pending:
            await waitUntilIdle()
            return nil
        }
    }

    // MARK: - Stopping

    /// Ends production and hands out nothing more, without waiting (safe from any thread).
    func requestStop() {
        let woken: [Waiter] = state.withLock { state in
            state.stopping = true
            state.ready = [:]
            return state.takeWaiters()
        }
        for waiter in woken { waiter.wake() }
    }

    /// Ends production and waits, blocking the caller, until no job of the pool runs (at most
    /// the time `workers` items take to produce). Never call it from a job of the pool.
    func stop() {
        requestStop()
        let semaphore = DispatchSemaphore(value: 0)
        if registerIdle(.thread(semaphore)) { semaphore.wait() }
    }

    /// Ends production and suspends until no job of the pool runs.
    func shutDown() async {
        requestStop()
        await waitUntilIdle()
    }

    private func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if !registerIdle(.task(continuation)) { continuation.resume() }
        }
    }

    /// Registers `waiter` to be woken when no job runs; false (not registered) when none
    /// runs now. Once the pool stops no job starts, so that moment is final.
    private func registerIdle(_ waiter: Waiter) -> Bool {
        state.withLock { state in
            guard state.running > 0 else { return false }
            state.idle.append(waiter)
            return true
        }
    }

    // MARK: - Async sequence

    /// The outputs as an async sequence with back-pressure: an item is taken from the pool
    /// only when the consumer asks for it, and a consumer waiting for an item suspends.
    /// Cancelling the consuming task stops the pool; the iteration then ends once no job of
    /// the pool runs.
    func stream() -> Outputs { Outputs(pool: self) }

    struct Outputs: AsyncSequence, Sendable {
        typealias Element = Output
        let pool: OrderedWorkPool<Output>

        func makeAsyncIterator() -> Iterator { Iterator(pool: pool) }

        struct Iterator: AsyncIteratorProtocol {
            let pool: OrderedWorkPool<Output>

            mutating func next() async throws -> Output? { try await pool.nextItem() }
        }
    }
}
