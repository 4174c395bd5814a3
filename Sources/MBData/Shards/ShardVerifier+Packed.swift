/// The checks `ShardSet.verify` makes of a packed set (`schemas/shard-format.md` §5.3): each
/// batch row by row, and the set's tokens, rows and samples against the manifest's packing
/// statistics.
extension ShardSet {
    /// What one packed batch holds, once checked.
    struct PackedBatchContents {
        /// The segments' samples, row by row: their source (0 outside a mixture) and `_id`.
        var samples: [(source: Int32, id: Int64)] = []
        /// Non-padding tokens.
        var tokens = 0
        /// Rows holding at least one segment.
        var rows = 0
    }

    /// What the packed batches of a set hold, summed as `verify` reads them.
    struct PackedSetTally {
        var tokens = 0
        var rows = 0
        /// The distinct ids of each epoch (outside a mixture, whose sources repeat ids).
        var idsByEpoch: [Int: Set<Int64>] = [:]
        /// Ids seen more than once within an epoch (outside a mixture).
        var repeatedIDs = 0

        mutating func add(_ batch: PackedBatchContents, epoch: Int) {
            tokens += batch.tokens
            rows += batch.rows
            for sample in batch.samples where !idsByEpoch[epoch, default: []].insert(sample.id).inserted { repeatedIDs += 1 }
        }
    }

    /// Checks one decoded packed batch and returns what it holds: `__metadata__` names the
    /// footer entry; the tensors are exactly `FIELD`, `segment_ids` and `positions` `[B, L]`,
    /// `_id` `[B, S]`, every other fixed-shape field `[B, S, …]` and, in a mixture, `_source`
    /// `[B, S]`; in each row the segment ids run 1, 1, …, 2, … without gaps from column 0,
    /// then 0 to the row's end, positions count from 0 within each segment, and padding has
    /// position 0 and zero tokens; the row's k segments have ids in `1 … max_id` (of their
    /// source) in `_id`'s first k columns and −1 after; the segments number the footer's
    /// `samples`.
    static func checkedPackedBatch(
        _ buffer: [UInt8], entry: ShardFormat.Entry, manifest: ShardManifest, packing: ShardManifest.PackingInfo
    ) throws -> PackedBatchContents {
        func refuse(_ message: String) -> MBDataError { MBDataError(.corruptData, message) }
        let reader = try SafetensorsReader(buffer)
        try checkMetadata(reader, entry: entry)
        guard let field = manifest.schema.field(named: packing.field), let itemSize = field.dtype.itemSize else {
            throw refuse("packing.field '\(packing.field.prefix(64))' is not a packable field of the schema")
        }
        let (rows, length) = (manifest.plan.parameters.batchSize / manifest.plan.parameters.world, packing.rowLength)
        var expected: Set<String> = []
        func tensor(_ name: String, _ dtype: String, _ shape: [Int?]) throws -> SafetensorsReader.TensorInfo {
            try checkedTensor(reader, name, dtype, shape, expected: &expected)
        }
        let tokens = try tensor(field.name, SafetensorsWriter.dtypeName(field.dtype), [rows, length])
        let segmentIDs = int32s(buffer, try tensor("segment_ids", "I32", [rows, length]))
        let positions = int32s(buffer, try tensor("positions", "I32", [rows, length]))
        let idInfo = try tensor("_id", "I64", [rows, nil])
        let width = idInfo.shape[1]
        let ids = int64s(buffer, idInfo)
        for other in manifest.schema.fields where other.name != field.name && other.isFixedShape && !other.dtype.isVariableLength {
            _ = try tensor(other.name, SafetensorsWriter.dtypeName(other.dtype), [rows, width] + other.shape)
        }
        let sources = try manifest.mixture.map { _ in int32s(buffer, try tensor("_source", "I32", [rows, width])) }
        try checkNoOtherTensors(reader, expected: expected)

        var contents = PackedBatchContents()
        for row in 0..<rows {
            var segments: Int32 = 0
            for column in 0..<length {
                let at = row * length + column
                let (segment, position) = (segmentIDs[at], positions[at])
                if segment == 0 {
                    let start = tokens.range.lowerBound + at * itemSize
                    guard position == 0, buffer[start..<start + itemSize].allSatisfy({ $0 == 0 }) else {
                        throw refuse("row \(row) column \(column): padding (segment_ids 0) with position \(position) or a nonzero \(field.name) value")
                    }
                } else if segment == segments + 1, column == 0 || segmentIDs[at - 1] != 0 {
                    guard position == 0 else { throw refuse("row \(row) column \(column): segment \(segment) starts at position \(position), not 0") }
                    segments = segment
                    contents.tokens += 1
                } else {
                    guard segment == segments, column > 0, segmentIDs[at - 1] == segment, position == positions[at - 1] &+ 1 else {
                        throw refuse(
                            "row \(row) column \(column): segment_ids \(segment) at position \(position) does not continue the row (segments run 1, 2, … from column 0, then padding to the end, positions count from 0 in each)"
                        )
                    }
                    contents.tokens += 1
                }
            }
            guard Int(segments) <= width else { throw refuse("row \(row) holds \(segments) segments, _id has \(width) columns") }
            for column in 0..<width {
                let (id, source) = (ids[row * width + column], sources?[row * width + column] ?? 0)
                guard column < segments else {
                    guard id == -1, sources == nil || source == -1 else {
                        throw refuse("row \(row) column \(column): after the row's \(segments) segments _id and _source must be -1, found \(id) and \(source)")
                    }
                    continue
                }
                let maxID: Int64
                if let mixture = manifest.mixture {
                    guard (0..<Int32(mixture.sources.count)).contains(source) else {
                        throw refuse("row \(row) column \(column): _source \(source) of a segment is not an index below \(mixture.sources.count)")
                    }
                    maxID = mixture.sources[Int(source)].maxId
                } else {
                    maxID = manifest.dataset.maxId
                }
                guard (1...maxID).contains(id) else { throw refuse("row \(row) column \(column): _id \(id) of a segment is not an id in 1…\(maxID)") }
                contents.samples.append((source, id))
            }
            if segments > 0 { contents.rows += 1 }
        }
        guard contents.samples.count == Int(entry.samples) else {
            throw refuse("\(contents.samples.count) segments, the footer says \(entry.samples)")
        }
        return contents
    }

    /// The packed batches hold the tokens and rows the manifest's statistics count — all of
    /// them under `tail = "pad"`, at most them under `"drop"`, which leaves an epoch's last
    /// rows out — and, outside a mixture, each epoch's samples once (a split sample once per
    /// piece), every sample with tokens except those dropped for their length.
    func checkPacked(_ tally: PackedSetTally, of packing: ShardManifest.PackingInfo, problem: (String) -> Void) {
        let statistics = packing.statistics
        let padded = manifest.plan.parameters.tail == .pad
        for (what, found, counted) in [("tokens", tally.tokens, statistics.tokens), ("rows", tally.rows, statistics.rows)]
        where padded ? found != counted : found > counted {
            problem("packing: the batches hold \(found) \(what), the manifest's statistics count \(counted)\(padded ? "" : " (at most that many under tail = \"drop\")")")
        }
        guard manifest.mixture == nil else { return }
        if tally.repeatedIDs > 0 && packing.overlong != .split {
            problem("packing: \(tally.repeatedIDs) segments repeat a sample of their epoch, and overlong samples are not split")
        }
        let distinct = tally.idsByEpoch.values.map(\.count).reduce(0, +)
        let shown = statistics.samples - statistics.droppedSamples - statistics.emptySamples
        if padded ? distinct != shown : distinct > shown {
            problem("packing: the epochs show \(distinct) samples, the manifest's statistics \(shown) (\(statistics.samples) less \(statistics.droppedSamples) dropped and \(statistics.emptySamples) empty)")
        }
    }
}
