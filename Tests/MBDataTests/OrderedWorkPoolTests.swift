import Foundation
import Synchronization
import Testing

@testable import MBData

@Suite struct OrderedWorkPoolTests {
    struct Boom: Error, Equatable { let index: Int }

    /// Spends a little CPU, so that jobs overlap and finish out of order.
    static func busy(_ index: Int) -> Int {
        var hash = UInt64(truncatingIfNeeded: index) &+ 0x9E37_79B9_7F4A_7C15
        for _ in 0..<(1_000 + (index * 7919) % 20_000) { hash = (hash ^ (hash >> 31)) &* 0xBF58_476D_1CE4_E5B9 }
        return hash == 0 ? -1 : index
    }

    @Test func itemsComeInIndexOrderWhateverOrderTheJobsFinishIn() async throws {
        let pool = OrderedWorkPool(count: 300, workers: 4, depth: 6) { Self.busy($0) }
        var received: [Int] = []
        for try await item in pool.stream() { received.append(item) }
        #expect(received == Array(0..<300))
    }

    @Test func noJobRunsMoreThanDepthAheadOfTheConsumerNorMoreThanWorkersAtOnce() async throws {
        let (workers, depth) = (3, 5)
        // `requested` counts the items the consumer has asked for: the pool delivered at most
        // that many, so an item it claims must lie below requested + depth.
        struct Counters {
            var requested = 0
            var running = 0
            var mostRunning = 0
            var aheadOfDepth: [Int] = []
        }
        let counters = Mutex(Counters())
        let pool = OrderedWorkPool(count: 200, workers: workers, depth: depth) { index in
            counters.withLock {
                if index >= $0.requested + depth { $0.aheadOfDepth.append(index) }
                $0.running += 1
                $0.mostRunning = max($0.mostRunning, $0.running)
            }
            defer { counters.withLock { $0.running -= 1 } }
            return Self.busy(index)
        }
        var iterator = pool.stream().makeAsyncIterator()
        var received = 0
        while true {
            counters.withLock { $0.requested += 1 }
            guard try await iterator.next() != nil else { break }
            received += 1
        }
        let final = counters.withLock { $0 }
        #expect(received == 200)
        #expect(final.aheadOfDepth.isEmpty, "claimed beyond the depth: \(final.aheadOfDepth.prefix(5))")
        #expect(final.mostRunning <= workers)
    }

    @Test func stopWaitsUntilNoJobOfThePoolRuns() async throws {
        let (started, startedContinuation) = AsyncStream.makeStream(of: Int.self)
        let gate = DispatchSemaphore(value: 0)
        let finished = Mutex<[Int]>([])
        let pool = OrderedWorkPool(count: 10, workers: 1, depth: 4) { index in
            startedContinuation.yield(index)
            if index == 0 { gate.wait() }
            finished.withLock { $0.append(index) }
            return index
        }
        var startedIterator = started.makeAsyncIterator()
        #expect(await startedIterator.next() == 0)
        // stop() blocks its caller; a thread of the test's own (not the executor, whose
        // threads the job may hold) calls it and reports what had finished when it returned.
        let seenWhenStopped = await withCheckedContinuation { (continuation: CheckedContinuation<[Int], Never>) in
            Thread {
                pool.stop()
                continuation.resume(returning: finished.withLock { $0 })
            }.start()
            // The job is released only once the pool is stopping, so stop() had to wait for it.
            while !pool.isStopping { sched_yield() }
            gate.signal()
        }
        #expect(seenWhenStopped == [0])
        #expect(try pool.next() == nil)
        #expect(finished.withLock { $0 } == [0])
    }

    @Test func theFirstFailureReachesTheConsumerAfterTheItemsBeforeIt() async throws {
        let pool = OrderedWorkPool(count: 100, workers: 4, depth: 8) { index in
            if index == 37 { throw Boom(index: index) }
            return Self.busy(index)
        }
        var received: [Int] = []
        let error = await #expect(throws: Boom.self) {
            for try await item in pool.stream() { received.append(item) }
        }
        #expect(error == Boom(index: 37))
        #expect(received == Array(0..<received.count) && received.count <= 37)
        #expect(throws: Boom.self) { try pool.next() }
    }

    @Test func cancellingTheConsumerStopsThePoolAndEndsTheIteration() async throws {
        let (started, startedContinuation) = AsyncStream.makeStream(of: Int.self)
        let pool = OrderedWorkPool(count: 1_000, workers: 2, depth: 2) { index in
            startedContinuation.yield(index)
            return Self.busy(index)
        }
        var startedIterator = started.makeAsyncIterator()
        _ = await startedIterator.next()
        let consumed = await withTaskGroup(of: Int.self) { group in
            group.addTask {
                var count = 0
                do {
                    for try await _ in pool.stream() { count += 1 }
                } catch {
                    return -1
                }
                return count
            }
            group.cancelAll()
            return await group.next() ?? -1
        }
        #expect((0..<1_000).contains(consumed))
        #expect(pool.isStopping)
    }
}
