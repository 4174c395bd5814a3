import Foundation

/// Produces `count` items on `workers` threads and hands them out in index order, with at
/// most `depth` items claimed ahead of the consumer (back-pressure, bounded memory).
///
/// `next()` blocks; `cancel()` (or deinit) stops the workers. The first error a worker
/// throws is rethrown by `next()`.
final class OrderedWorkPool<Output: Sendable>: @unchecked Sendable {
    let count: Int
    private let depth: Int
    private let produce: @Sendable (Int) throws -> Output
    private let condition = NSCondition()
    private var ready: [Int: Output] = [:]
    private var nextToClaim = 0
    private var delivered = 0
    private var failure: (any Error)?
    private var cancelled = false
    private let stopped = DispatchGroup()

    init(count: Int, workers: Int, depth: Int, produce: @escaping @Sendable (Int) throws -> Output) {
        self.count = count
        self.depth = max(1, depth)
        self.produce = produce
        for _ in 0..<max(1, min(workers, count)) {
            stopped.enter()
            let thread = Thread { [self] in
                work()
                stopped.leave()
            }
            thread.start()
        }
    }

    // Workers hold the pool until they exit, so by now none is left to wait for.
    deinit { stop() }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
        stopped.wait()
    }

    /// Stops handing out items without waiting for the workers (safe from any thread).
    func stop() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    /// Items produced and waiting for the consumer.
    var readyCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return ready.count
    }

    func next() throws -> Output? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            switch try takeLocked() {
            case .item(let output): return output
            case .end: return nil
            case .pending: condition.wait()
            }
        }
    }

    enum Take {
        case item(Output)
        case end
        /// The next item is still being produced.
        case pending
    }

    /// The next item, the end or the failure if one is there now, without waiting.
    func take() throws -> Take {
        condition.lock()
        defer { condition.unlock() }
        return try takeLocked()
    }

    private func takeLocked() throws -> Take {
        if let failure { throw failure }
        if cancelled || delivered >= count { return .end }
        guard let output = ready.removeValue(forKey: delivered) else { return .pending }
        delivered += 1
        condition.broadcast()
        return .item(output)
    }

    private func work() {
        while true {
            condition.lock()
            while !cancelled && failure == nil && nextToClaim < count && nextToClaim >= delivered + depth {
                condition.wait()
            }
            guard !cancelled, failure == nil, nextToClaim < count else {
                condition.unlock()
                return
            }
            let item = nextToClaim
            nextToClaim += 1
            condition.unlock()
            do {
                let output = try produce(item)
                condition.lock()
                ready[item] = output
                condition.broadcast()
                condition.unlock()
            } catch {
                condition.lock()
                if failure == nil { failure = error }
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    /// The outputs as an async sequence with back-pressure: an item is taken from the pool
    /// only when the consumer asks for it, and the blocking wait runs on a dispatch queue of
    /// its own, off the cooperative pool. Ending the iteration early stops the workers.
    func stream() -> Outputs { Outputs(pool: self) }

    struct Outputs: AsyncSequence, Sendable {
        typealias Element = Output
        let pool: OrderedWorkPool<Output>

        func makeAsyncIterator() -> Iterator { Iterator(pool: pool) }

        struct Iterator: AsyncIteratorProtocol {
            let pool: OrderedWorkPool<Output>
            private let queue = DispatchQueue(label: "mbdata.pool.consumer")

            init(pool: OrderedWorkPool<Output>) { self.pool = pool }

            mutating func next() async throws -> Output? {
                let pool = self.pool
                // A ready item is taken here; only a wait goes to the queue (two thread hops).
                switch try pool.take() {
                case .item(let output): return output
                case .end: return nil
                case .pending: break
                }
                let queue = self.queue
                return try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in
                        queue.async { continuation.resume(with: Result { try pool.next() }) }
                    }
                } onCancel: {
                    pool.stop()
                }
            }
        }
    }
}
