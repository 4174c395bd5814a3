import Foundation
import GRDB

/// One batch of a plan, collated and compressed, ready to store or send.
public struct ReadyBatch: Sendable, Hashable {
    public var epoch: Int
    /// The global batch index within the epoch.
    public var batch: Int
    public var rank: Int
    /// Real (non-padding) samples in the batch.
    public var sampleCount: Int
    /// Bytes of the safetensors buffer inside the frame.
    public var uncompressedSize: Int
    /// One LZ4 frame holding the safetensors buffer.
    public var frame: [UInt8]
}

/// How the prefetcher works.
public struct PrefetchConfiguration: Sendable, Hashable {
    /// Batches claimed but not yet taken by the consumer, at most (back-pressure). Default 8.
    public var depth: Int = 8
    /// Threads that read, collate and compress. Default: the number of active cores.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// LZ4 level: 0 (default) is the fast mode, 1–12 HC.
    public var compressionLevel: Int32 = 0
    /// Fields with a variable first dimension to pad to a fixed length.
    public var padLengths: [String: Int] = [:]

    public init() {}
}

/// Produces the batches of a plan in order — epoch, then batch, then rank — with one SQL
/// query per batch, collation and LZ4 compression spread over `workers` threads, and at
/// most `depth` batches held ahead of the consumer. Memory is bounded by
/// `depth × (compressed + uncompressed batch size)`, whatever the dataset size.
///
/// `next()` blocks; call it from a thread of your own (not the cooperative pool), or use
/// `batches()` from async code. `cancel()` (or deinit) stops the workers.
public final class Prefetcher: @unchecked Sendable {
    public let plan: DatasetPlan
    public let epochs: Range<Int>
    public let ranks: [Int]
    public let configuration: PrefetchConfiguration
    public var totalBatches: Int { epochs.count * plan.plan.batchesPerEpoch * ranks.count }

    private let pool: DatabasePool
    private let collator: BatchCollator
    private let reader: SampleReader
    private let condition = NSCondition()
    private var ready: [Int: ReadyBatch] = [:]
    private var nextToClaim = 0
    private var delivered = 0
    private var failure: (any Error)?
    private var cancelled = false
    private var running = 0
    private let stopped = DispatchGroup()

    public init(
        dataset: Dataset, plan: DatasetPlan, epochs: Range<Int>, ranks: [Int]? = nil,
        configuration: PrefetchConfiguration = PrefetchConfiguration()
    ) async throws {
        guard let schema = try await dataset.schema() else {
            throw MBDataError(.invalidDataset, "the dataset is empty", source: dataset.path)
        }
        guard configuration.depth > 0, configuration.workers > 0 else {
            throw MBDataError(.invalidArgument, "prefetch depth and workers must be positive")
        }
        let ranks = ranks ?? Array(0..<plan.parameters.world)
        guard ranks.allSatisfy({ (0..<plan.parameters.world).contains($0) }) else {
            throw MBDataError(.invalidArgument, "ranks \(ranks) outside 0..<\(plan.parameters.world)")
        }
        self.plan = plan
        self.epochs = epochs
        self.ranks = ranks
        self.configuration = configuration
        pool = dataset.pool
        collator = try BatchCollator(schema: schema, padLengths: configuration.padLengths, flagsValidity: plan.parameters.tail == .pad)
        reader = SampleReader(schema: schema)
        for _ in 0..<min(configuration.workers, max(totalBatches, 1)) {
            stopped.enter()
            running += 1
            let thread = Thread { [self] in
                work()
                condition.lock()
                running -= 1
                condition.broadcast()
                condition.unlock()
                stopped.leave()
            }
            thread.start()
        }
    }

    deinit {
        cancel()
    }

    /// Stops the workers; `next()` then returns nil.
    public func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
        stopped.wait()
    }

    /// The next batch in order, nil after the last; rethrows a worker's failure.
    public func next() throws -> ReadyBatch? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let failure { throw failure }
            if cancelled || delivered >= totalBatches { return nil }
            if let batch = ready.removeValue(forKey: delivered) {
                delivered += 1
                condition.broadcast()
                return batch
            }
            condition.wait()
        }
    }

    /// The batches as an async sequence; the blocking waits run on a dedicated thread.
    public func batches() -> AsyncThrowingStream<ReadyBatch, any Error> {
        AsyncThrowingStream { continuation in
            let thread = Thread { [self] in
                do {
                    while let batch = try next() {
                        continuation.yield(batch)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { [self] _ in
                condition.lock()
                cancelled = true
                condition.broadcast()
                condition.unlock()
            }
            thread.start()
        }
    }

    private func work() {
        var permutations: [Int: IndexPermutation] = [:]
        let batchesPerEpoch = plan.plan.batchesPerEpoch
        while true {
            condition.lock()
            while !cancelled && failure == nil && nextToClaim < totalBatches && nextToClaim >= delivered + configuration.depth {
                condition.wait()
            }
            guard !cancelled, failure == nil, nextToClaim < totalBatches else {
                condition.unlock()
                return
            }
            let item = nextToClaim
            nextToClaim += 1
            condition.unlock()

            let epoch = epochs.lowerBound + item / (batchesPerEpoch * ranks.count)
            let batch = (item / ranks.count) % batchesPerEpoch
            let rank = ranks[item % ranks.count]
            do {
                if permutations[epoch] == nil {
                    permutations = [epoch: plan.plan.permutation(epoch: epoch)]
                }
                let ids = plan.sampleIDs(epoch: epoch, batch: batch, rank: rank, permutation: permutations[epoch])
                let rows = try pool.read { db in try reader.rows(db, ids: ids) }
                let buffer = collator.collate(
                    rows, metadata: ["format": "mbdata-batch-1", "epoch": String(epoch), "batch": String(batch), "rank": String(rank)])
                let frame = try LZ4Frame.compress(buffer, level: configuration.compressionLevel)
                let result = ReadyBatch(
                    epoch: epoch, batch: batch, rank: rank, sampleCount: ids.compactMap { $0 }.count, uncompressedSize: buffer.count,
                    frame: frame)
                condition.lock()
                ready[item] = result
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
}
