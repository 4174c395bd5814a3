import Foundation

/// `manifest.json` of a shard directory: which dataset version and plan the shards hold,
/// and every shard's size and hash. Shards are a cache keyed by this: a manifest that does
/// not match the dataset and plan asked for is refused.
///
/// The JSON keys are snake_case (`max_id`, `batches_per_epoch`…); `schemas/shard-format.md`
/// specifies every one.
public struct ShardManifest: Codable, Sendable, Hashable {
    /// The value of ``format`` this build writes and reads.
    public static let formatName = "mbdata-shards-1"
    /// The manifest's file name inside a shard directory.
    public static let fileName = "manifest.json"

    /// The dataset version the shards were made from.
    public struct DatasetInfo: Codable, Sendable, Hashable {
        /// The dataset version the plan was pinned to.
        public var version: Int
        /// The largest sample id at that version.
        public var maxId: Int64
        /// Samples in the plan's split at that version.
        public var samples: Int
        /// The plan fingerprint: schema, version, sample ids and plan parameters.
        public var fingerprint: String
    }

    /// The plan the shards hold, and which of its epochs.
    public struct PlanInfo: Codable, Sendable, Hashable {
        /// The plan's parameters; a loader or daemon must ask for exactly these.
        public var parameters: PlanParameters
        /// The first epoch held.
        public var firstEpoch: Int
        /// The number of consecutive epochs held from `firstEpoch`.
        public var epochs: Int
        /// Global batches per epoch (``EpochPlan/batchesPerEpoch``).
        public var batchesPerEpoch: Int
        /// Samples left out of each epoch under `TailPolicy.drop`.
        public var droppedPerEpoch: Int
        /// Fields padded to a fixed length (`PrefetchConfiguration.padLengths`).
        public var padLengths: [String: Int]
    }

    /// One shard file of the set.
    public struct Shard: Codable, Sendable, Hashable {
        /// The file name inside the directory: `shard-00000.mbshard`, `shard-00001.mbshard`, … in order.
        public var file: String
        /// The file's size in bytes.
        public var bytes: Int
        /// `xxh64:` and 16 hex digits of the whole file.
        public var xxh64: String
        /// Frames (batches) the file holds.
        public var batches: Int
    }

    /// Sums over every frame of the set.
    public struct Totals: Codable, Sendable, Hashable {
        /// Frames in all shards: epochs × batches per epoch × world.
        public var batches: Int
        /// Real samples in all batches.
        public var samples: Int
        /// Bytes of the decoded safetensors buffers.
        public var uncompressedBytes: Int
        /// Bytes of the LZ4 frames.
        public var compressedBytes: Int
    }

    /// The manifest format: ``formatName``.
    public var format: String = formatName
    /// The dataset version and plan fingerprint.
    public var dataset: DatasetInfo
    /// The dataset's schema, which the batches' tensors follow.
    public var schema: Schema
    /// The plan and epochs held.
    public var plan: PlanInfo
    /// How frames are compressed: `lz4-frame level N`.
    public var compression: String
    /// The shard files, in frame order.
    public var shards: [Shard]
    /// Sums over every frame.
    public var totals: Totals
    /// When the set was written: ISO 8601 UTC with milliseconds.
    public var createdAt: String
    /// How the batches are packed; absent (nil) for an unpacked set, which older readers
    /// read as before.
    public var packing: PackingInfo? = nil
    /// The sources of a mixture's batches; absent (nil) for a set of one dataset. With it,
    /// ``dataset`` describes the mixture's epoch (``MixtureInfo``).
    public var mixture: MixtureInfo? = nil
}

extension ShardManifest {
    /// Decodes and validates a manifest held in memory (what `ShardSet` does with
    /// `manifest.json`; the fuzz target's entry point). Throws `MBDataError`:
    /// `.invalidDataset` when the bytes are not a manifest, `.corruptData` when its values
    /// contradict each other: a count out of range, `batches_per_epoch` or the totals not
    /// what the plan implies, shard files misnamed or listed twice, an invalid schema or
    /// `pad_lengths`.
    public static func parse(_ bytes: [UInt8], source: String = fileName) throws -> ShardManifest {
        let manifest: ShardManifest
        do {
            manifest = try decoder.decode(ShardManifest.self, from: Data(bytes))
        } catch {
            throw MBDataError(.corruptData, "manifest is not a valid mbdata shard manifest", source: source, cause: error)
        }
        guard manifest.format == formatName else {
            throw MBDataError(.invalidDataset, "manifest format \(manifest.format.prefix(64)), expected \(formatName)", source: source)
        }
        try manifest.validate(source: source)
        return manifest
    }

    /// The file name of the `index`-th shard (§1 of the format: five digits from 00000).
    static func shardFileName(_ index: Int) -> String {
        let digits = String(index)
        return "shard-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + "." + ShardFormat.fileExtension
    }

    /// Checks everything the manifest says about itself, with arithmetic that cannot
    /// overflow: counts are non-negative and in range, `batches_per_epoch` and
    /// `dropped_per_epoch` follow from `dataset.samples` and the plan, the epochs fit a
    /// footer's u32, shard files are named and numbered as §1 says (so none is listed twice),
    /// and `totals.batches`/`totals.samples` equal what the plan implies and the shards list.
    /// What needs the shard files (footers, frames) is checked by `ShardSet` and `verify`.
    package func validate(source: String = fileName) throws {
        func refuse(_ message: String) -> MBDataError { MBDataError(.corruptData, "manifest: \(message)", source: source) }
        try Self.validate(schema: schema, padLengths: plan.padLengths, refuse: refuse)

        let n = dataset.samples
        guard Self.isDigest(dataset.fingerprint) else { throw refuse("dataset.fingerprint \"\(dataset.fingerprint.prefix(40))\" is not \"xxh64:\" and 16 hex digits") }
        guard dataset.version >= 1 else { throw refuse("dataset.version \(dataset.version) is not ≥ 1") }
        // A mixture's epoch may draw a sample more than once: more draws than ids.
        guard n >= 1, dataset.maxId >= 1, mixture != nil || Int64(n) <= dataset.maxId else {
            throw refuse("dataset.samples \(n) is not in 1…max_id (\(dataset.maxId)): every sample has a distinct id ≥ 1")
        }
        let parameters = plan.parameters
        do { try parameters.validate() } catch let error as MBDataError { throw refuse("plan.parameters: \(error.message)") }
        if let mixture {
            try mixture.validate(manifest: self, refuse: refuse)
        }
        if let packing {
            try packing.validate(plan: plan, totals: totals, schema: schema, refuse: refuse)
            return try validateShards(refuse: refuse)
        }
        let g = parameters.batchSize
        let batchesPerEpoch = parameters.tail == .drop ? n / g : n / g + (n % g == 0 ? 0 : 1)
        let dropped = parameters.tail == .drop ? n % g : 0
        guard plan.batchesPerEpoch == batchesPerEpoch else {
            throw refuse("plan.batches_per_epoch is \(plan.batchesPerEpoch), but \(n) samples in global batches of \(g) (tail \(parameters.tail.rawValue)) make \(batchesPerEpoch)")
        }
        guard plan.droppedPerEpoch == dropped else {
            throw refuse("plan.dropped_per_epoch is \(plan.droppedPerEpoch), but \(n) samples in global batches of \(g) (tail \(parameters.tail.rawValue)) drop \(dropped)")
        }
        // Footers hold the epoch as a u32.
        guard plan.firstEpoch >= 0, plan.epochs >= 1, plan.firstEpoch <= Int(UInt32.max), plan.epochs <= Int(UInt32.max) - plan.firstEpoch + 1 else {
            throw refuse("plan.first_epoch \(plan.firstEpoch) and plan.epochs \(plan.epochs) do not describe epochs within 0…\(UInt32.max)")
        }
        let batches = CheckedSize.product([batchesPerEpoch, parameters.world, plan.epochs])
        let samples = CheckedSize.product(n - dropped, plan.epochs)
        guard totals.batches == batches else {
            throw refuse("totals.batches is \(totals.batches), but \(plan.epochs) epochs of \(batchesPerEpoch) batches on \(parameters.world) ranks make \(batches.map(String.init) ?? "more than \(Int.max)")")
        }
        guard totals.samples == samples else {
            throw refuse("totals.samples is \(totals.samples), but \(plan.epochs) epochs of \(n - dropped) samples make \(samples.map(String.init) ?? "more than \(Int.max)")")
        }
        try validateShards(refuse: refuse)
    }

    /// Byte totals are non-negative; shard files are named and numbered as §1 says and their
    /// batches add up to `totals.batches`.
    private func validateShards(refuse: (String) -> MBDataError) throws {
        guard totals.uncompressedBytes >= 0, totals.compressedBytes >= 0 else { throw refuse("totals hold a negative byte count") }
        var listed = 0
        for (index, shard) in shards.enumerated() {
            guard shard.file == Self.shardFileName(index) else {
                throw refuse("shards[\(index)] is \"\(shard.file.prefix(80))\"; the shards are shard-00000.mbshard, shard-00001.mbshard, … in order, each listed once")
            }
            guard shard.bytes >= ShardFormat.trailerSize + 8, shard.batches >= 1 else {
                throw refuse("shards[\(index)] (\(shard.file)) declares \(shard.bytes) bytes and \(shard.batches) batches; a shard holds at least one frame, its footer and trailer")
            }
            guard Self.isDigest(shard.xxh64) else { throw refuse("shards[\(index)].xxh64 \"\(shard.xxh64.prefix(40))\" is not \"xxh64:\" and 16 hex digits") }
            guard let sum = CheckedSize.sum(listed, shard.batches) else { throw refuse("shards[].batches add up to more than \(Int.max)") }
            listed = sum
        }
        guard listed == totals.batches else {
            throw refuse("shards[].batches add up to \(listed), totals.batches is \(totals.batches)")
        }
    }

    /// The schema as `Schema(json:)` would accept it, every fixed shape's size computable,
    /// and `pad_lengths` naming fields whose first dimension is variable.
    private static func validate(schema: Schema, padLengths: [String: Int], refuse: (String) -> MBDataError) throws {
        do { try schema.validate() } catch let error as MBDataError { throw refuse("schema: \(error.description)") }
        guard !schema.fields.isEmpty else { throw refuse("schema has no fields") }
        for field in schema.fields {
            var size = field.dtype.itemSize ?? 1
            for dimension in field.shape {
                guard let dimension else { continue }
                guard dimension <= Int(Int32.max), let product = CheckedSize.product(size, dimension), product <= ShardFormat.maxBatchBytes else {
                    throw refuse("schema field '\(field.name)' has shape \(field.shapeDescription), larger than a batch can hold")
                }
                size = product
            }
        }
        for (name, length) in padLengths.sorted(by: { $0.key < $1.key }) {
            guard let field = schema.field(named: name), field.dtype.itemSize != nil, field.shape.first == .some(nil) else {
                throw refuse("plan.pad_lengths names '\(name.prefix(64))', which is not a field with a variable first dimension")
            }
            guard length >= 1, length <= Int(Int32.max) else { throw refuse("plan.pad_lengths['\(name)'] is \(length), not in 1…\(Int32.max)") }
        }
    }

    static func isDigest(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        return utf8.count == 22 && text.hasPrefix("xxh64:")
            && utf8[6...].allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }
}
