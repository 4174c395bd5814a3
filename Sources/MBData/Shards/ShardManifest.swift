/// `manifest.json` of a shard directory: which dataset version and plan the shards hold,
/// and every shard's size and hash. Shards are a cache keyed by this: a manifest that does
/// not match the dataset and plan asked for is refused.
public struct ShardManifest: Codable, Sendable, Hashable {
    public static let formatName = "mbdata-shards-1"
    public static let fileName = "manifest.json"

    public struct DatasetInfo: Codable, Sendable, Hashable {
        public var version: Int
        public var maxId: Int64
        public var samples: Int
        /// The plan fingerprint: schema, version, sample ids and plan parameters.
        public var fingerprint: String
    }

    public struct PlanInfo: Codable, Sendable, Hashable {
        public var parameters: PlanParameters
        public var firstEpoch: Int
        public var epochs: Int
        public var batchesPerEpoch: Int
        public var droppedPerEpoch: Int
        public var padLengths: [String: Int]
    }

    public struct Shard: Codable, Sendable, Hashable {
        public var file: String
        public var bytes: Int
        public var xxh64: String
        public var batches: Int
    }

    public struct Totals: Codable, Sendable, Hashable {
        public var batches: Int
        public var samples: Int
        public var uncompressedBytes: Int
        public var compressedBytes: Int
    }

    public var format: String = formatName
    public var dataset: DatasetInfo
    public var schema: Schema
    public var plan: PlanInfo
    public var compression: String
    public var shards: [Shard]
    public var totals: Totals
    public var createdAt: String
}
