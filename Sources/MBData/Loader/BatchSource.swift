import Foundation

/// Where a loader's batches come from: read live from the dataset (collated, not
/// compressed: they never leave the process), decoded from shard files, or received from a
/// remote source. Local batches are prepared on worker threads, in order, with bounded depth.
enum BatchSource: Sendable {
    case live(LiveBatchProducer, configuration: MultiBatchLoader.Configuration)
    case shards(ShardSet, configuration: MultiBatchLoader.Configuration)
    case remote(any RemoteBatchSource, configuration: MultiBatchLoader.Configuration)

    static func live(dataset: Dataset, plan: DatasetPlan, configuration: MultiBatchLoader.Configuration) async throws -> BatchSource {
        var prefetch = PrefetchConfiguration()
        prefetch.padLengths = configuration.padLengths
        return .live(try await LiveBatchProducer(dataset: dataset, plan: plan, configuration: prefetch), configuration: configuration)
    }

    func pool(items: [PlanItem]) throws -> OrderedWorkPool<Batch> {
        switch self {
        case .live(let producer, let configuration):
            let sampleTransform = configuration.sampleTransform
            let batchTransform = configuration.batchTransform
            let seed = configuration.seed
            return OrderedWorkPool(count: items.count, workers: configuration.workers, depth: configuration.prefetchDepth) { index in
                let item = items[index]
                var rows = try producer.rows(item)
                if let sampleTransform {
                    rows = try rows.map { row in
                        guard let row else { return nil }
                        var random = SeededGenerator(planSeed: seed, epoch: item.epoch, key: row.id, salt: 0x5A4D_504C)
                        return (row.id, try sampleTransform(row.values, &random))
                    }
                }
                let batch = try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.collate(rows, as: item))
                return try Self.transform(batch, batchTransform, seed: seed)
            }
        case .remote:
            preconditionFailure("a remote source streams its batches; it has no local pool")
        case .shards(let shards, let configuration):
            let frames = try SpoolBatchProducer(shards: shards)
            let batchTransform = configuration.batchTransform
            let seed = configuration.seed
            return OrderedWorkPool(count: items.count, workers: configuration.workers, depth: configuration.prefetchDepth) { index in
                let item = items[index]
                let batch = try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: frames.decoded(item))
                return try Self.transform(batch, batchTransform, seed: seed)
            }
        }
    }

    /// Checks and decodes a frame received from a remote source, off the cooperative pool.
    static func decode(_ ready: ReadyBatch, configuration: MultiBatchLoader.Configuration) async throws -> Batch {
        try await runBlocking {
            guard ShardFormat.xxh64(ready.frame) == ready.checksum else {
                throw MBDataError(.corruptData, "checksum mismatch in the frame of epoch \(ready.epoch) batch \(ready.batch) rank \(ready.rank)")
            }
            let buffer = try LZ4Frame.decompress(ready.frame, limit: max(ready.uncompressedSize, 1), verifyingContentChecksum: false)
            guard buffer.count == ready.uncompressedSize else {
                throw MBDataError(.corruptData, "frame of batch \(ready.batch) decodes to \(buffer.count) bytes, the message says \(ready.uncompressedSize)")
            }
            let batch = try Batch(epoch: ready.epoch, index: ready.batch, rank: ready.rank, safetensors: buffer)
            return try transform(batch, configuration.batchTransform, seed: configuration.seed)
        }
    }

    private static func transform(_ batch: Batch, _ transform: BatchTransform?, seed: UInt64) throws -> Batch {
        guard let transform else { return batch }
        var random = SeededGenerator(
            planSeed: seed, epoch: batch.epoch, key: Int64(batch.index) << 20 | Int64(batch.rank), salt: 0x4241_5443)
        return try transform(batch, &random)
    }
}
