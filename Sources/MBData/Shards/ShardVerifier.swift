import Foundation

/// What verifying a shard directory found.
public struct ShardVerifyReport: Sendable, Codable {
    /// Frames read, checked and decoded.
    public var batchesChecked = 0
    /// Real samples found in the batches that passed.
    public var samplesChecked = 0
    /// Whether every sample of the plan appeared in some batch, so that the manifest's
    /// fingerprint could be recomputed from the batches' ids and was compared.
    public var fingerprintChecked = false
    /// The first problems found (at most the `maxProblems` asked for), each naming the
    /// shard file and batch.
    public var problems: [String] = []
    /// True when no problem was found.
    public var isValid: Bool { problems.isEmpty }
}

extension ShardSet {
    /// Checks what `schemas/shard-format.md` §7 says a reader must check, beyond what opening
    /// the set checked (manifest, trailers, footers, frame order and totals): every shard's
    /// hash, every frame's checksum and decoding, every batch's tensors against the schema and
    /// its footer entry (`schemas/shard-format.md` §5), that each epoch holds every sample of the
    /// plan exactly once (less the dropped tail), and — when every sample appears in some
    /// batch — the manifest's fingerprint recomputed from the ids, which covers the schema,
    /// dataset version, highest id and plan parameters the manifest names. A packed set's
    /// batches are checked row by row (§5.3) and its tokens, rows and samples against the
    /// manifest's packing statistics (``checkedPackedBatch(_:entry:manifest:packing:)``).
    ///
    /// Problems are reported, not thrown. Reads and decodes every frame: blocking, and as long
    /// as reading the whole set; from async code use the `async` overload.
    public func verify(maxProblems: Int = 20) -> ShardVerifyReport {
        var report = ShardVerifyReport()
        func problem(_ text: String) { if report.problems.count < maxProblems { report.problems.append(text) } }
        let plan = manifest.plan
        var idsByEpoch: [Int: [Int64]] = [:]
        var drawsByEpoch: [Int: [Int]] = [:]
        var packed = PackedSetTally()

        for (shardIndex, shard) in manifest.shards.enumerated() {
            let path = (directory as NSString).appendingPathComponent(shard.file)
            do {
                let digest = try FileByteStream.digest(of: path)
                if digest != shard.xxh64 { problem("\(shard.file): content hash \(digest) differs from the manifest's \(shard.xxh64)") }
            } catch {
                problem("\(shard.file): cannot be read whole: \(error)")
            }
            for (entryIndex, entry) in entries[shardIndex].enumerated() {
                report.batchesChecked += 1
                let label = "\(shard.file): epoch \(entry.epoch) batch \(entry.batch) rank \(entry.rank)"
                do {
                    let buffer = try batch(shard: shardIndex, entry: entryIndex)
                    if let packing = manifest.packing {
                        let contents = try Self.checkedPackedBatch(buffer, entry: entry, manifest: manifest, packing: packing)
                        packed.add(contents, epoch: Int(entry.epoch))
                        report.samplesChecked += contents.samples.count
                        continue
                    }
                    let real = try Self.checkedRows(buffer, entry: entry, manifest: manifest)
                    if let mixture = manifest.mixture {
                        var draws = drawsByEpoch[Int(entry.epoch)] ?? Array(repeating: 0, count: mixture.sources.count)
                        for source in real.sources { draws[Int(source)] += 1 }
                        drawsByEpoch[Int(entry.epoch)] = draws
                    } else {
                        idsByEpoch[Int(entry.epoch), default: []] += real.ids
                    }
                    report.samplesChecked += real.ids.count
                } catch let error as MBDataError {
                    problem("\(label): \(error.message)")
                } catch {
                    problem("\(label): \(error)")
                }
            }
        }
        // Opening the set checked that the frames are exactly the plan's triples, so there
        // are `epochs` epochs of batches here only when an epoch has batches at all: the loop
        // is bounded by the frames the files hold, never by a number in the manifest alone.
        if let packing = manifest.packing {
            checkPacked(packed, of: packing, problem: problem)
            return report
        }
        guard plan.batchesPerEpoch > 0 else { return report }
        if let mixture = manifest.mixture {
            checkDraws(drawsByEpoch, of: mixture, problem: problem)
            return report
        }
        let expectedPerEpoch = manifest.dataset.samples - plan.droppedPerEpoch
        var seen = Set<Int64>()
        for epoch in plan.firstEpoch..<(plan.firstEpoch + plan.epochs) {
            let ids = idsByEpoch[epoch] ?? []
            let distinct = Set(ids)
            if distinct.count != ids.count { problem("epoch \(epoch): \(ids.count - distinct.count) samples appear more than once") }
            if ids.count != expectedPerEpoch {
                problem("epoch \(epoch): \(ids.count) samples, expected \(expectedPerEpoch) (\(manifest.dataset.samples) less \(plan.droppedPerEpoch) dropped)")
            }
            seen.formUnion(distinct)
        }
        if seen.count == manifest.dataset.samples {
            let fingerprint = DatasetPlan.fingerprint(
                schema: manifest.schema, ids: seen.sorted(), version: manifest.dataset.version, maxID: manifest.dataset.maxId,
                parameters: plan.parameters)
            report.fingerprintChecked = true
            if fingerprint != manifest.dataset.fingerprint {
                problem(
                    "manifest: the fingerprint of its schema, dataset version \(manifest.dataset.version), ids ≤ \(manifest.dataset.maxId), plan parameters and the batches' ids is \(fingerprint), the manifest says \(manifest.dataset.fingerprint): one of them was edited"
                )
            }
        }
        return report
    }

    /// The same checks, run on a thread of their own (they read and decode every frame).
    ///
    /// Problems are reported in the result, not thrown.
    public func verify(maxProblems: Int = 20) async throws -> ShardVerifyReport {
        let shards = self
        return try await runBlocking { shards.verify(maxProblems: maxProblems) }
    }

    /// Checks one decoded batch against §5 of the format and returns its real sample ids:
    /// `__metadata__` names the entry's epoch, batch and rank; the tensors are exactly those
    /// the schema, `pad_lengths` and tail policy imply, with their dtypes and shapes (the
    /// reader already checked each byte range against its shape); `_id` holds −1 or ids in
    /// `1 … max_id`, as many real ones as the entry says; `_valid` is present exactly under
    /// `tail = "pad"` and equals `_id ≥ 0`; every `.offsets` runs from 0, never decreasing,
    /// to the length of its values; every `.lengths` value is in `0 … L`.
    package func checkBatch(_ buffer: [UInt8], entry: ShardFormat.Entry) throws -> [Int64] {
        try Self.checkBatch(buffer, entry: entry, manifest: manifest)
    }

    static func checkBatch(_ buffer: [UInt8], entry: ShardFormat.Entry, manifest: ShardManifest) throws -> [Int64] {
        try checkedRows(buffer, entry: entry, manifest: manifest).ids
    }

    /// Each epoch of a mixture set holds every source's draws of the kept positions: its
    /// draws per epoch less those in the dropped tail.
    private func checkDraws(_ drawsByEpoch: [Int: [Int]], of mixture: ShardManifest.MixtureInfo, problem: (String) -> Void) {
        let plan = manifest.plan
        guard let schedule = try? mixture.mixturePlan(seed: plan.parameters.seed).schedule else { return }
        var expected = mixture.sources.map(\.draws)
        for slot in schedule.slots((mixture.epochSize - plan.droppedPerEpoch)..<mixture.epochSize) { expected[slot.source] -= 1 }
        for epoch in plan.firstEpoch..<(plan.firstEpoch + plan.epochs) {
            let found = drawsByEpoch[epoch] ?? Array(repeating: 0, count: expected.count)
            for (source, (have, want)) in zip(mixture.sources, zip(found, expected)) where have != want {
                problem("epoch \(epoch): \(have) rows of source '\(source.name)', the mixture draws \(want)")
            }
        }
    }

    /// ``checkBatch(_:entry:manifest:)``'s checks; the real rows' ids and, in a mixture set,
    /// their sources (`_source`: present exactly in a mixture set, −1 exactly on padding rows,
    /// each id within its source's `max_id`).
    static func checkedRows(_ buffer: [UInt8], entry: ShardFormat.Entry, manifest: ShardManifest) throws -> (ids: [Int64], sources: [Int32]) {
        func refuse(_ message: String) -> MBDataError { MBDataError(.corruptData, message) }
        let reader = try SafetensorsReader(buffer)
        try checkMetadata(reader, entry: entry)
        let rows = manifest.plan.parameters.batchSize / manifest.plan.parameters.world
        var expected: Set<String> = ["_id"]
        func tensor(_ name: String, _ dtype: String, _ shape: [Int?]) throws -> SafetensorsReader.TensorInfo {
            try checkedTensor(reader, name, dtype, shape, expected: &expected)
        }
        func int64s(_ info: SafetensorsReader.TensorInfo) -> [Int64] { Self.int64s(buffer, info) }
        /// `name.offsets`: [B+1], from 0, non-decreasing, ending at `total`; each row's extent
        /// a multiple of `unit`.
        func offsets(_ name: String, total: Int, unit: Int = 1) throws {
            let values = int64s(try tensor(name + ".offsets", "I64", [rows + 1]))
            guard values.first == 0, values.last == Int64(total), zip(values, values.dropFirst()).allSatisfy({ $0 <= $1 && ($1 - $0) % Int64(unit) == 0 }) else {
                throw refuse("tensor \"\(name).offsets\" does not run from 0 to \(total) without decreasing\(unit > 1 ? ", in whole rows of \(unit) elements" : "")")
            }
        }
        for field in manifest.schema.fields {
            let dtype = SafetensorsWriter.dtypeName(field.dtype)
            let known = field.shape.dropFirst().map { $0 }
            if field.dtype.isVariableLength {
                let values = try tensor(field.name, "U8", [nil])
                try offsets(field.name, total: values.shape[0])
            } else if field.isFixedShape {
                _ = try tensor(field.name, dtype, [rows] + field.shape)
            } else if let length = manifest.plan.padLengths[field.name] {
                _ = try tensor(field.name, dtype, [rows, length] + known)
                let lengths = int64s(try tensor(field.name + ".lengths", "I64", [rows]))
                guard lengths.allSatisfy({ (0...Int64(length)).contains($0) }) else {
                    throw refuse("tensor \"\(field.name).lengths\" holds a value outside 0…\(length)")
                }
            } else if field.shape.first == .some(nil) {
                let values = try tensor(field.name, dtype, [nil] + known)
                try offsets(field.name, total: values.shape[0])
            } else {
                let values = try tensor(field.name, dtype, [nil])
                try offsets(field.name, total: values.shape[0], unit: field.shape.compactMap { $0 }.reduce(1, *))
            }
        }
        let ids = int64s(try tensor("_id", "I64", [rows]))
        let maxID = manifest.dataset.maxId
        if let bad = ids.first(where: { $0 != -1 && !(1...maxID).contains($0) }) {
            throw refuse("_id \(bad) is neither -1 (padding) nor an id in 1…\(maxID)")
        }
        let real = ids.filter { $0 >= 0 }
        guard real.count == Int(entry.samples) else { throw refuse("\(real.count) samples, the footer says \(entry.samples)") }
        var sources: [Int32] = []
        if let mixture = manifest.mixture {
            let all = Self.int32s(buffer, try tensor("_source", "I32", [rows]))
            for (source, id) in zip(all, ids) {
                guard (source == -1) == (id == -1), source >= -1, source < mixture.sources.count else {
                    throw refuse("_source \(source) of a row with _id \(id): -1 marks padding rows only, else an index below \(mixture.sources.count)")
                }
                guard source < 0 || id <= mixture.sources[Int(source)].maxId else {
                    throw refuse("_id \(id) is above the max_id of source '\(mixture.sources[Int(source)].name)'")
                }
            }
            sources = all.filter { $0 >= 0 }
        }
        if manifest.plan.parameters.tail == .pad {
            let valid = try tensor("_valid", "BOOL", [rows])
            guard zip(buffer[valid.range], ids).allSatisfy({ $0 == ($1 >= 0 ? 1 : 0) }) else {
                throw refuse("_valid differs from _id ≥ 0")
            }
        }
        try checkNoOtherTensors(reader, expected: expected)
        return (real, sources)
    }

    /// `__metadata__` names the footer entry's epoch, batch and rank, in the batch format.
    static func checkMetadata(_ reader: SafetensorsReader, entry: ShardFormat.Entry) throws {
        let expected = ["format": "mbdata-batch-1", "epoch": String(entry.epoch), "batch": String(entry.batch), "rank": String(entry.rank)]
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) where reader.metadata[key] != value {
            throw MBDataError(
                .corruptData, "__metadata__ \(key) is \(reader.metadata[key].map { "\"\($0.prefix(32))\"" } ?? "missing"), the footer entry says \"\(value)\"")
        }
    }

    /// The tensor `name`, checked to have `dtype` and `shape` (nil: any extent), and noted in `expected`.
    static func checkedTensor(
        _ reader: SafetensorsReader, _ name: String, _ dtype: String, _ shape: [Int?], expected: inout Set<String>
    ) throws -> SafetensorsReader.TensorInfo {
        expected.insert(name)
        guard let info = reader.tensors[name] else { throw MBDataError(.corruptData, "tensor \"\(name)\" is missing") }
        guard info.dtype == dtype, info.shape.count == shape.count, zip(info.shape, shape).allSatisfy({ $1 == nil || $0 == $1 }) else {
            let wanted = "[" + shape.map { $0.map(String.init) ?? "*" }.joined(separator: ", ") + "]"
            throw MBDataError(.corruptData, "tensor \"\(name)\" is \(info.dtype) \(info.shape), the schema makes it \(dtype) \(wanted)")
        }
        return info
    }

    /// Refuses a tensor that is not among `expected`.
    static func checkNoOtherTensors(_ reader: SafetensorsReader, expected: Set<String>) throws {
        if let extra = reader.names.first(where: { !expected.contains($0) }) {
            throw MBDataError(
                .corruptData,
                "tensor \"\(extra.prefix(64))\" is not one the schema and plan make\(extra == "_valid" ? " (_valid is only in plans with tail = \"pad\")" : "")")
        }
    }

    static func int64s(_ buffer: [UInt8], _ info: SafetensorsReader.TensorInfo) -> [Int64] {
        stride(from: info.range.lowerBound, to: info.range.upperBound, by: 8).map { Int64(bitPattern: ShardFormat.littleEndianU64(buffer, at: $0)) }
    }

    static func int32s(_ buffer: [UInt8], _ info: SafetensorsReader.TensorInfo) -> [Int32] {
        stride(from: info.range.lowerBound, to: info.range.upperBound, by: 4).map { Int32(bitPattern: ShardFormat.littleEndianU32(buffer, at: $0)) }
    }
}
