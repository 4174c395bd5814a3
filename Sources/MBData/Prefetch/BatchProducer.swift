import Foundation
import GRDB

/// Prepares any single batch of a plan on demand. Both methods block (they read, collate,
/// compress or copy): call them from a worker thread, never from the cooperative pool.
package protocol BatchProducer: Sendable {
    func produce(_ item: PlanItem) throws -> ReadyBatch

    /// Calls `body` with what `item`'s frame is and a function that writes the frame into the
    /// first `length` bytes of a buffer, so that a caller can place the frame inside a larger
    /// message. A spool reads it from the shard straight there; the default produces the
    /// batch and copies its frame.
    func withFrame<R>(_ item: PlanItem, _ body: (FrameDescription, _ write: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> R) throws -> R
}

/// A batch's frame as known before its bytes are read: from a shard footer, or from the
/// batch just produced.
package struct FrameDescription: Sendable, Hashable {
    package var epoch: Int
    package var batch: Int
    package var rank: Int
    package var sampleCount: Int
    package var uncompressedSize: Int
    /// Bytes of the LZ4 frame.
    package var length: Int
    /// xxh64 of the frame.
    package var checksum: UInt64

    package init(epoch: Int, batch: Int, rank: Int, sampleCount: Int, uncompressedSize: Int, length: Int, checksum: UInt64) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
        self.sampleCount = sampleCount
        self.uncompressedSize = uncompressedSize
        self.length = length
        self.checksum = checksum
    }
}

extension BatchProducer {
    package func withFrame<R>(
        _ item: PlanItem, _ body: (FrameDescription, _ write: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> R
    ) throws -> R {
        let ready = try produce(item)
        let description = FrameDescription(
            epoch: ready.epoch, batch: ready.batch, rank: ready.rank, sampleCount: ready.sampleCount,
            uncompressedSize: ready.uncompressedSize, length: ready.frame.count, checksum: ready.checksum)
        return try body(description) { buffer in
            ready.frame.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }
}

/// Where a spooled frame lies: the shard file (its path and identity) and the offset.
package struct FrameLocation: Sendable, Hashable {
    /// The shard file's absolute path.
    package var path: String
    /// The open file's `st_dev` and `st_ino`.
    package var device: UInt64
    package var inode: UInt64
    /// Where the frame starts in the file.
    package var offset: UInt64
    /// The frame's batch, sizes and xxh64.
    package var frame: FrameDescription

    package init(path: String, device: UInt64, inode: UInt64, offset: UInt64, frame: FrameDescription) {
        self.path = path
        self.device = device
        self.inode = inode
        self.offset = offset
        self.frame = frame
    }
}

/// Batches read live from a dataset: one SQL query per batch (ids sorted for locality),
/// collation into safetensors — straight from SQLite's pages when every field has a fixed
/// shape (`FixedShapeBatchReader`) — one LZ4 frame, and the frame's xxh64.
package struct LiveBatchProducer: BatchProducer, LiveRowProducer {
    package let plan: DatasetPlan
    /// The dataset's kept connections (``Dataset/batchReaders``).
    let batchReaders: BatchReaders
    let collator: BatchCollator
    let reader: SampleReader
    let fixedShape: FixedShapeBatchReader?
    let level: Int32
    let contentChecksum: Bool

    package init(dataset: Dataset, plan: DatasetPlan, configuration: PrefetchConfiguration = PrefetchConfiguration()) async throws {
        guard let schema = try await dataset.schema() else {
            throw MBDataError(.invalidDataset, "the dataset is empty", source: dataset.path)
        }
        self.plan = plan
        batchReaders = dataset.batchReaders
        collator = try BatchCollator(schema: schema, padLengths: configuration.padLengths, flagsValidity: plan.parameters.tail == .pad)
        reader = SampleReader(schema: schema)
        fixedShape = FixedShapeBatchReader(schema: schema, flagsValidity: plan.parameters.tail == .pad)
        level = configuration.compressionLevel
        contentChecksum = configuration.frameContentChecksum
    }

    package func produce(_ item: PlanItem) throws -> ReadyBatch {
        let ids = plan.sampleIDs(epoch: item.epoch, batch: item.batch, rank: item.rank)
        let buffer = try safetensors(ids, as: item)
        let frame = try LZ4Frame.compress(buffer, level: level, contentChecksum: contentChecksum)
        return ReadyBatch(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: ids.count(where: { $0 != nil }),
            uncompressedSize: buffer.count, frame: frame, checksum: ShardFormat.xxh64(frame))
    }

    /// Rows of `item` for a live feed.
    func batchRows(_ item: PlanItem) throws -> BatchRows { BatchRows(rows: try rows(item)) }

    /// `rows` as the safetensors buffer of `item`.
    func collate(_ rows: BatchRows, as item: PlanItem) -> [UInt8] { collate(rows.rows, as: item) }

    /// The safetensors buffer of `item` for a live feed, read with one query.
    func safetensors(_ item: PlanItem) throws -> [UInt8] {
        try safetensors(plan.sampleIDs(epoch: item.epoch, batch: item.batch, rank: item.rank), as: item)
    }

    /// The safetensors buffer of `item`, whose rows are `ids`, read with one query.
    func safetensors(_ ids: [Int64?], as item: PlanItem) throws -> [UInt8] {
        try batchReaders.read(idCount: ids.count) { db in
            if let fixedShape, let buffer = try fixedShape.batch(db, ids: ids, metadata: Self.metadata(item)) { return buffer }
            return collator.collate(try reader.rows(db, ids: ids), metadata: Self.metadata(item))
        }
    }

    /// The rows of `item` in plan order (nil: a padding row), read with one query.
    func rows(_ item: PlanItem) throws -> [BatchCollator.Row] {
        let ids = plan.sampleIDs(epoch: item.epoch, batch: item.batch, rank: item.rank)
        return try batchReaders.read(idCount: ids.count) { db in try reader.rows(db, ids: ids) }
    }

    /// `rows` as the safetensors buffer of `item`, its metadata naming the batch.
    func collate(_ rows: [BatchCollator.Row], as item: PlanItem) -> [UInt8] {
        collator.collate(rows, metadata: Self.metadata(item))
    }

    private static func metadata(_ item: PlanItem) -> [String: String] {
        ["format": "mbdata-batch-1", "epoch": String(item.epoch), "batch": String(item.batch), "rank": String(item.rank)]
    }
}

/// Batches read from a shard set: frames exactly as stored, with the footer's checksum,
/// never recompressed.
package final class SpoolBatchProducer: BatchProducer {
    package let shards: ShardSet
    private let files: any ShardFileAccess
    private let locations: [PlanItem: (shard: Int, entry: Int)]

    /// The shard set's files opened from its directory.
    package convenience init(shards: ShardSet) throws {
        try self.init(shards: shards, files: OpenShardFiles(shards))
    }

    /// The shard set's frames read through `files` (a local directory, or a cache an origin fills).
    package init(shards: ShardSet, files: any ShardFileAccess) {
        self.shards = shards
        var locations: [PlanItem: (shard: Int, entry: Int)] = [:]
        for (shard, entries) in shards.entries.enumerated() {
            for (index, entry) in entries.enumerated() {
                locations[PlanItem(epoch: Int(entry.epoch), batch: Int(entry.batch), rank: Int(entry.rank))] = (shard, index)
            }
        }
        self.locations = locations
        self.files = files
    }

    /// Whether the set holds every batch of `epoch` for `rank`.
    package func holds(epoch: Int, rank: Int, batchesPerEpoch: Int) -> Bool {
        (0..<batchesPerEpoch).allSatisfy { locations[PlanItem(epoch: epoch, batch: $0, rank: rank)] != nil }
    }

    private func location(_ item: PlanItem) throws -> (shard: Int, entry: Int) {
        guard let location = locations[item] else {
            throw MBDataError(
                .invalidDataset, "the shards lack epoch \(item.epoch) batch \(item.batch) rank \(item.rank)", source: shards.directory)
        }
        return location
    }

    /// The footer entry of `item`'s frame: its length, decoded size, samples and checksum.
    package func entry(_ item: PlanItem) throws -> ShardFormat.Entry {
        let (shard, index) = try location(item)
        return shards.entries[shard][index]
    }

    /// `item`'s shard, footer entry and frame description.
    private func frame(_ item: PlanItem) throws -> (shard: Int, entry: ShardFormat.Entry, description: FrameDescription) {
        let (shard, index) = try location(item)
        let entry = shards.entries[shard][index]
        let description = FrameDescription(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: Int(entry.samples),
            uncompressedSize: Int(entry.uncompressed), length: Int(entry.length), checksum: entry.checksum)
        return (shard, entry, description)
    }

    /// The frame as stored, read from the shard straight into the caller's buffer.
    package func withFrame<R>(
        _ item: PlanItem, _ body: (FrameDescription, _ write: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> R
    ) throws -> R {
        let (shard, entry, description) = try frame(item)
        return try files.withFile(shard: shard) { file in
            try body(description) { buffer in
                try file.read(Int(entry.offset)..<Int(entry.offset + entry.length), into: buffer)
            }
        }
    }

    /// Whether another process on this host may read the set's frames from their shard
    /// files: not when the files come from a cache that may evict them.
    package var deliversLocally: Bool { files.pathsOutliveReads }

    /// Where `item`'s frame lies, for a reader on this host that reads it itself.
    package func frameLocation(_ item: PlanItem) throws -> FrameLocation {
        let (shard, entry, description) = try frame(item)
        return try files.withFile(shard: shard) { file in
            FrameLocation(path: file.absolutePath, device: file.device, inode: file.inode, offset: entry.offset, frame: description)
        }
    }

    package func produce(_ item: PlanItem) throws -> ReadyBatch {
        let (shard, index) = try location(item)
        let entry = shards.entries[shard][index]
        let frame = try files.withFile(shard: shard) { try $0.copy(Int(entry.offset)..<Int(entry.offset + entry.length)) }
        return ReadyBatch(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: Int(entry.samples),
            uncompressedSize: Int(entry.uncompressed), frame: frame, checksum: entry.checksum)
    }

    /// The decoded safetensors buffer of one batch, its frame checked against the footer.
    func decoded(_ item: PlanItem) throws -> [UInt8] {
        let (shard, index) = try location(item)
        return try files.withFile(shard: shard) { try shards.batch(file: $0, entry: index, shard: shard) }
    }
}
