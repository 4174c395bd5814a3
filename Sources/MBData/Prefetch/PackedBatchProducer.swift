import GRDB
import Synchronization

/// Packed batches read live from a dataset: each batch's rows packed from its window's
/// lengths, the segments' samples read with one query, collated by ``PackedBatchCollator``.
/// Blocks: call it from a worker thread, never from the cooperative pool.
package final class PackedBatchProducer: BatchProducer {
    package let plan: PackedPlan
    let database: DatabasePool
    let collator: PackedBatchCollator
    let reader: SampleReader
    /// The LZ4 level of ``produce(_:)``.
    let level: Int32
    /// Whether frames carry LZ4's content checksum (``PrefetchConfiguration/frameContentChecksum``).
    let contentChecksum: Bool
    private let layouts = Mutex<[Int: PackedEpochLayout]>([:])

    /// Batches of `plan` read from `dataset`, compressed at `compressionLevel` by ``produce(_:)``,
    /// with LZ4's content checksum when `contentChecksum`.
    package init(dataset: Dataset, plan: PackedPlan, compressionLevel: Int32 = 0, contentChecksum: Bool = true) async throws {
        guard let schema = try await dataset.schema() else {
            throw MBDataError(.invalidDataset, "the dataset is empty", source: dataset.path)
        }
        self.plan = plan
        database = dataset.pool
        collator = try PackedBatchCollator(schema: schema, spec: plan.spec)
        reader = SampleReader(schema: schema)
        level = compressionLevel
        self.contentChecksum = contentChecksum
    }

    /// The layout of `epoch`, packed once and kept (a few integers per window).
    package func layout(epoch: Int) -> PackedEpochLayout {
        if let known = layouts.withLock({ $0[epoch] }) { return known }
        let made = plan.layout(epoch: epoch)
        layouts.withLock { $0[epoch] = made }
        return made
    }

    /// Whether `epoch`'s layout was made already.
    package func hasLayout(epoch: Int) -> Bool { layouts.withLock { $0[epoch] != nil } }

    /// Global batches of `epoch`.
    package func batchesPerEpoch(epoch: Int) -> Int { plan.batchesPerEpoch(layout(epoch: epoch)) }

    /// The safetensors buffer of `item` and its real (non-padding) segments.
    package func collated(_ item: PlanItem) throws -> (buffer: [UInt8], segments: Int) {
        let rows = plan.rows(layout(epoch: item.epoch), batch: item.batch, rank: item.rank)
        let positions = Set(rows.flatMap { $0.segments.map(\.sample) }).sorted()
        let ids = positions.map { plan.base.ids[plan.sampleIndex(epoch: item.epoch, position: $0)] }
        let read = try database.read { db in try reader.rows(db, ids: ids) }
        var samples: [Int: (id: Int64, values: [SampleValue])] = [:]
        for (position, row) in zip(positions, read) { samples[position] = row }
        let metadata = [
            "format": "mbdata-batch-1", "epoch": String(item.epoch), "batch": String(item.batch), "rank": String(item.rank),
            "packing": plan.spec.key,
        ]
        let buffer = try collator.collate(rows, metadata: metadata) { position in
            guard let sample = samples[position] else {
                throw MBDataError(.invalidDataset, "sample at position \(position) of epoch \(item.epoch) was not read")
            }
            return sample
        }
        return (buffer, rows.reduce(0) { $0 + $1.segments.count })
    }

    /// `item` as one LZ4 frame at the producer's level.
    package func produce(_ item: PlanItem) throws -> ReadyBatch { try produce(item, level: level) }

    /// `item` as one LZ4 frame at `level` with its xxh64; the sample count is its segments.
    package func produce(_ item: PlanItem, level: Int32) throws -> ReadyBatch {
        let (buffer, segments) = try collated(item)
        let frame = try LZ4Frame.compress(buffer, level: level, contentChecksum: contentChecksum)
        return ReadyBatch(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: segments, uncompressedSize: buffer.count, frame: frame,
            checksum: ShardFormat.xxh64(frame))
    }
}
