import GRDB

/// Packed batches read live from a dataset: each batch's rows packed from its window's
/// lengths, the segments' samples read with one query, collated by ``PackedBatchCollator``.
/// Blocks: call it from a worker thread, never from the cooperative pool.
package final class PackedBatchProducer: PackedProducer {
    package let plan: PackedPlan
    let database: DatabasePool
    let collator: PackedBatchCollator
    let reader: SampleReader
    /// The LZ4 level of ``produce(_:)``.
    package let level: Int32
    /// Whether frames carry LZ4's content checksum (``PrefetchConfiguration/frameContentChecksum``).
    package let contentChecksum: Bool
    /// Each epoch's layout of ``plan``, made once and kept.
    package let layouts: PackedLayouts<PackedPlan>

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
        layouts = PackedLayouts(plan)
    }

    /// The safetensors buffer of `item` and its real (non-padding) segments.
    package func collated(_ item: PlanItem) throws -> (buffer: [UInt8], segments: Int) {
        let rows = plan.rows(layout(epoch: item.epoch), batch: item.batch, rank: item.rank)
        let positions = Set(rows.flatMap { $0.segments.map(\.sample) }).sorted()
        let ids = positions.map { plan.base.ids[plan.sampleIndex(epoch: item.epoch, position: $0)] }
        let read = try database.read { db in try reader.rows(db, ids: ids) }
        var samples: [Int: (id: Int64, values: [SampleValue])] = [:]
        for (position, row) in zip(positions, read) { samples[position] = row }
        let buffer = try collator.collate(rows, metadata: Self.metadata(item, spec: plan.spec)) { position in
            guard let sample = samples[position] else {
                throw MBDataError(.invalidDataset, "sample at position \(position) of epoch \(item.epoch) was not read")
            }
            return sample
        }
        return (buffer, rows.reduce(0) { $0 + $1.segments.count })
    }
}
