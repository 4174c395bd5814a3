import Foundation

/// Packed batches of a mixture read live from its datasets: each batch's rows packed from
/// its window's draws, the segments' samples read by the mixture's own read path (one query
/// per source drawn from, values in the batch schema's order) and collated by
/// ``PackedBatchCollator`` with a per-segment `_source`. Blocks: call it from a worker
/// thread, never from the cooperative pool.
package final class PackedMixtureBatchProducer: PackedProducer {
    package let plan: PackedMixturePlan
    let reader: MixtureBatchProducer
    let collator: PackedBatchCollator
    /// The LZ4 level of ``produce(_:)``.
    package let level: Int32
    /// Whether frames carry LZ4's content checksum (``PrefetchConfiguration/frameContentChecksum``).
    package let contentChecksum: Bool
    /// Each epoch's layout of ``plan``, made once and kept.
    package let layouts: PackedLayouts<PackedMixturePlan>
    /// The sources' names as a JSON array, for each batch's metadata.
    private let sourceNames: String

    /// Batches of `plan` read from `datasets`, given in `_source` order (the datasets the plan
    /// was resolved from), compressed at `configuration.compressionLevel` by ``produce(_:)``.
    package init(plan: PackedMixturePlan, datasets: [Dataset], configuration: PrefetchConfiguration = PrefetchConfiguration()) async throws {
        self.plan = plan
        reader = try await MixtureBatchProducer(plan: plan.base, datasets: datasets, configuration: configuration)
        collator = try PackedBatchCollator(schema: plan.base.schema, spec: plan.spec)
        level = configuration.compressionLevel
        contentChecksum = configuration.frameContentChecksum
        layouts = PackedLayouts(plan)
        sourceNames = String(decoding: try JSONEncoder().encode(plan.base.names), as: UTF8.self)
    }

    /// The producer of `plan` over the datasets of `components` (those it was resolved from).
    package convenience init(plan: PackedMixturePlan, components: [MixtureComponent], configuration: PrefetchConfiguration = PrefetchConfiguration()) async throws {
        try await self.init(plan: plan, datasets: components.map { try $0.storedDataset() }, configuration: configuration)
    }

    /// The safetensors buffer of `item` and its real (non-padding) segments.
    package func collated(_ item: PlanItem) throws -> (buffer: [UInt8], segments: Int) {
        let rows = plan.rows(layout(epoch: item.epoch), batch: item.batch, rank: item.rank)
        let positions = Set(rows.flatMap { $0.segments.map(\.sample) }).sorted()
        let samples = try read(epoch: item.epoch, positions: positions)
        func sample(_ position: Int) throws -> (source: Int32, row: (id: Int64, values: [SampleValue])) {
            guard let sample = samples[position] else {
                throw MBDataError(.invalidDataset, "the draw at position \(position) of epoch \(item.epoch) was not read")
            }
            return sample
        }
        let buffer = try collator.collate(
            rows, metadata: Self.metadata(item, spec: plan.spec, extra: ["sources": sourceNames]), source: { try sample($0).source },
            sample: { try sample($0).row })
        return (buffer, rows.reduce(0) { $0 + $1.segments.count })
    }

    /// The source and sample (id, values in the batch schema's order) of the draws at
    /// `positions` (ascending) of `epoch`, read with one query per source.
    private func read(epoch: Int, positions: [Int]) throws -> [Int: (source: Int32, row: (id: Int64, values: [SampleValue]))] {
        var samples: [Int: (source: Int32, row: (id: Int64, values: [SampleValue]))] = [:]
        if let first = positions.first, let last = positions.last {
            let span = plan.draws(epoch: epoch, first..<last + 1)
            let draws = positions.map { span[$0 - first] }
            let read = try reader.batchRows(
                MixtureBatchDraws(ids: draws.map { plan.base.sources[$0.source].ids[$0.index] }, sources: draws.map { Int32($0.source) }))
            for (position, (row, source)) in zip(positions, zip(read.rows, draws.map(\.source))) {
                if let row { samples[position] = (Int32(source), row) }
            }
        }
        return samples
    }
}
