import Foundation
import GRDB

/// A mixture's batches read live from its datasets: one query per source a batch draws
/// from, each source's values put in the batch schema's field order, collated with a
/// `_source` tensor — straight from SQLite's pages into the batch when every field has a
/// fixed shape (`FixedShapeBatchReader`), as for one dataset — and (for shards and
/// streams) one LZ4 frame. Blocks: call it from a worker thread, never from the
/// cooperative pool.
package struct MixtureBatchProducer: BatchProducer, LiveRowProducer {
    package let plan: MixtureBatchPlan
    /// Each source's kept connections (``Dataset/batchReaders``).
    let batchReaders: [BatchReaders]
    let readers: [SampleReader]
    /// Per source: for each field of the batch schema, its index in the source's rows; nil
    /// when the source's fields are already in that order.
    let orders: [[Int]?]
    let collator: BatchCollator
    let fixedShape: FixedShapeBatchReader?
    let level: Int32
    /// Whether frames carry LZ4's content checksum (``PrefetchConfiguration/frameContentChecksum``).
    let contentChecksum: Bool
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
        batchReaders = datasets.map(\.batchReaders)
        self.readers = readers
        self.orders = orders
        collator = try BatchCollator(schema: plan.schema, padLengths: configuration.padLengths, flagsValidity: plan.parameters.tail == .pad)
        fixedShape = FixedShapeBatchReader(schema: plan.schema, flagsValidity: plan.parameters.tail == .pad)
        level = configuration.compressionLevel
        contentChecksum = configuration.frameContentChecksum
        let names = try JSONEncoder().encode(plan.names)
        sourceNames = String(decoding: names, as: UTF8.self)
    }

    /// The producer of `plan` over the datasets of `components` (those it was resolved from).
    package init(plan: MixtureBatchPlan, components: [MixtureComponent], configuration: PrefetchConfiguration = PrefetchConfiguration()) async throws {
        try await self.init(plan: plan, datasets: components.map { try $0.storedDataset() }, configuration: configuration)
    }

    package func produce(_ item: PlanItem) throws -> ReadyBatch {
        let draws = plan.batchDraws(epoch: item.epoch, batch: item.batch, rank: item.rank)
        let buffer = try safetensors(draws, as: item)
        let frame = try LZ4Frame.compress(buffer, level: level, contentChecksum: contentChecksum)
        return ReadyBatch(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: draws.ids.count(where: { $0 != nil }),
            uncompressedSize: buffer.count, frame: frame, checksum: ShardFormat.xxh64(frame))
    }

    /// The safetensors buffer of `item` for a live feed.
    func safetensors(_ item: PlanItem) throws -> [UInt8] {
        try safetensors(plan.batchDraws(epoch: item.epoch, batch: item.batch, rank: item.rank), as: item)
    }

    /// The safetensors buffer of `item`, whose rows `draws` names: read straight into the
    /// batch when the schema's shapes are fixed, else rows then collation.
    private func safetensors(_ draws: MixtureBatchDraws, as item: PlanItem) throws -> [UInt8] {
        if let fixedShape,
            let buffer = try fixedShape.batch(
                ids: draws.ids, sources: draws.sources, metadata: metadata(item), orders: orders,
                read: { source, count, body in try batchReaders[source].read(idCount: count, body) })
        {
            return buffer
        }
        return collate(try batchRows(draws), as: item)
    }

    /// The rows of `item` in plan order, read with one query per source drawn from.
    func batchRows(_ item: PlanItem) throws -> BatchRows {
        try batchRows(plan.batchDraws(epoch: item.epoch, batch: item.batch, rank: item.rank))
    }

    /// The rows `draws` names, in order, read with one query per source drawn from.
    func batchRows(_ draws: MixtureBatchDraws) throws -> BatchRows {
        var rows = [BatchCollator.Row](repeating: nil, count: draws.ids.count)
        var slotsBySource = [[Int]](repeating: [], count: plan.sources.count)
        var idsBySource = [[Int64]](repeating: [], count: plan.sources.count)
        for (slot, (source, id)) in zip(draws.sources, draws.ids).enumerated() where source >= 0 {
            guard let id else { continue }
            slotsBySource[Int(source)].append(slot)
            idsBySource[Int(source)].append(id)
        }
        for (source, slots) in slotsBySource.enumerated() where !slots.isEmpty {
            try batchReaders[source].read(idCount: slots.count) { db in
                try readers[source].read(db, ids: idsBySource[source], into: &rows, at: slots, order: orders[source])
            }
        }
        return BatchRows(rows: rows, sources: draws.sources)
    }

    /// `rows` as the safetensors buffer of `item`, its metadata naming the batch and the
    /// sources (`sources`: a JSON array of names, indexed by `_source`).
    func collate(_ rows: BatchRows, as item: PlanItem) -> [UInt8] {
        collator.collate(rows.rows, metadata: metadata(item), sources: rows.sources)
    }

    private func metadata(_ item: PlanItem) -> [String: String] {
        [
            "format": "mbdata-batch-1", "epoch": String(item.epoch), "batch": String(item.batch), "rank": String(item.rank),
            "sources": sourceNames,
        ]
    }
}
