import Foundation
import GRDB

/// A mixture's batches read live from its datasets: one query per source a batch draws
/// from, each source's values put in the batch schema's field order, collated with a
/// `_source` tensor, and (for shards and streams) one LZ4 frame. Blocks: call it from a
/// worker thread, never from the cooperative pool.
package struct MixtureBatchProducer: BatchProducer, LiveRowProducer {
    package let plan: MixtureBatchPlan
    let databases: [DatabasePool]
    let readers: [SampleReader]
    /// Per source: for each field of the batch schema, its index in the source's rows; nil
    /// when the source's fields are already in that order.
    let orders: [[Int]?]
    let collator: BatchCollator
    let level: Int32
    /// The sources' names as a JSON array, for each batch's metadata.
    let sourceNames: String

    /// The producer of `plan` over `datasets`, given in `_source` order (the datasets the
    /// plan was resolved from).
    package init(plan: MixtureBatchPlan, datasets: [Dataset], configuration: PrefetchConfiguration = PrefetchConfiguration()) async throws {
        precondition(datasets.count == plan.sources.count, "\(datasets.count) datasets for \(plan.sources.count) sources")
        var readers: [SampleReader] = []
        var orders: [[Int]?] = []
        for dataset in datasets {
            guard let schema = try await dataset.schema() else {
                throw MBDataError(.invalidDataset, "the dataset is empty", source: dataset.path)
            }
            readers.append(SampleReader(schema: schema))
            let order = MixtureFields.order(of: schema, as: plan.schema)
            orders.append(order == Array(order.indices) ? nil : order)
        }
        self.plan = plan
        databases = datasets.map(\.pool)
        self.readers = readers
        self.orders = orders
        collator = try BatchCollator(schema: plan.schema, padLengths: configuration.padLengths, flagsValidity: plan.parameters.tail == .pad)
        level = configuration.compressionLevel
        let names = try JSONEncoder().encode(plan.names)
        sourceNames = String(decoding: names, as: UTF8.self)
    }

    /// The producer of `plan` over the datasets of `components` (those it was resolved from).
    package init(plan: MixtureBatchPlan, components: [MixtureComponent], configuration: PrefetchConfiguration = PrefetchConfiguration()) async throws {
        try await self.init(plan: plan, datasets: components.map { try $0.storedDataset() }, configuration: configuration)
    }

    package func produce(_ item: PlanItem) throws -> ReadyBatch {
        let rows = try batchRows(item)
        let buffer = collate(rows, as: item)
        let frame = try LZ4Frame.compress(buffer, level: level)
        return ReadyBatch(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: rows.rows.compactMap { $0 }.count,
            uncompressedSize: buffer.count, frame: frame, checksum: ShardFormat.xxh64(frame))
    }

    /// The rows of `item` in plan order, read with one query per source drawn from.
    func batchRows(_ item: PlanItem) throws -> BatchRows {
        let entries = plan.sampleIDs(epoch: item.epoch, batch: item.batch, rank: item.rank)
        var rows = [BatchCollator.Row](repeating: nil, count: entries.count)
        var slotsBySource = [[Int]](repeating: [], count: plan.sources.count)
        for (slot, entry) in entries.enumerated() {
            if let entry { slotsBySource[entry.source].append(slot) }
        }
        for (source, slots) in slotsBySource.enumerated() where !slots.isEmpty {
            let ids = slots.map { entries[$0]?.id }
            let read = try databases[source].read { db in try readers[source].rows(db, ids: ids) }
            for (slot, row) in zip(slots, read) {
                guard let row, let order = orders[source] else {
                    rows[slot] = row
                    continue
                }
                rows[slot] = (row.id, order.map { row.values[$0] })
            }
        }
        return BatchRows(rows: rows, sources: entries.map { Int32($0?.source ?? -1) })
    }

    /// `rows` as the safetensors buffer of `item`, its metadata naming the batch and the
    /// sources (`sources`: a JSON array of names, indexed by `_source`).
    func collate(_ rows: BatchRows, as item: PlanItem) -> [UInt8] {
        collator.collate(
            rows.rows,
            metadata: [
                "format": "mbdata-batch-1", "epoch": String(item.epoch), "batch": String(item.batch), "rank": String(item.rank),
                "sources": sourceNames,
            ],
            sources: rows.sources)
    }
}
