import Foundation

/// Writes the batches of a prefetcher into a shard directory: shard files of about
/// `targetShardBytes` each (frames, footer, trailer; written atomically), then
/// `manifest.json`. An existing manifest is removed first, so a half-replaced set is never
/// mistaken for a whole one.
public enum ShardWriter {
    /// Where a write stands, reported after every batch written.
    public struct Progress: Sendable {
        /// Batches written so far.
        public var batches: Int
        /// Batches the prefetcher produces in all (``Prefetcher/totalBatches``).
        public var totalBatches: Int
        /// Decoded bytes of the batches written so far.
        public var uncompressedBytes: Int
        /// Frame bytes written so far.
        public var compressedBytes: Int
        /// Seconds since the write started.
        public var elapsedSeconds: Double
    }

    /// Drains `prefetcher` into shard files in `directory` and writes the manifest last;
    /// returns the manifest written. Runs on a thread of its own, not on the cooperative pool.
    ///
    /// - Parameters:
    ///   - prefetcher: The batches to write, in order; it must not be consumed elsewhere.
    ///   - schema: The dataset's schema, recorded in the manifest.
    ///   - directory: Created if missing; an existing one must be empty or hold a shard set,
    ///     whose shards not rewritten are removed.
    ///   - targetShardBytes: A shard is closed once it holds this many bytes (default 256 MiB).
    ///   - progress: Called after every batch, on the writing thread.
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when `directory` is a
    ///   file or holds other files; `MBDataError.Code.storage` when a shard or the manifest
    ///   cannot be written (the disk is full, say); what the prefetcher throws. A failed write
    ///   leaves no manifest, so the directory is never taken for a whole set.
    public static func write(
        _ prefetcher: Prefetcher, schema: Schema, to directory: String, targetShardBytes: Int = 256 << 20,
        progress: (@Sendable (Progress) -> Void)? = nil
    ) async throws -> ShardManifest {
        let handOff = UncheckedSendable(prefetcher)
        return try await runOnThread {
            try writeBlocking(handOff.value, schema: schema, to: directory, targetShardBytes: targetShardBytes, progress: progress)
        }
    }

    private static func writeBlocking(
        _ prefetcher: Prefetcher, schema: Schema, to directory: String, targetShardBytes: Int,
        progress: (@Sendable (Progress) -> Void)?
    ) throws -> ShardManifest {
        let started = Date()
        let manager = FileManager.default
        try ShardDirectory.prepare(directory)
        let manifestPath = (directory as NSString).appendingPathComponent(ShardManifest.fileName)
        if manager.fileExists(atPath: manifestPath) {
            try manager.removeItem(atPath: manifestPath)
            AtomicFile.syncDirectory(of: manifestPath)
        }
        var shards: [ShardManifest.Shard] = []
        var totals = ShardManifest.Totals(batches: 0, samples: 0, uncompressedBytes: 0, compressedBytes: 0)
        var file: AtomicFile?
        var entries: [ShardFormat.Entry] = []

        func finishShard() throws {
            guard let current = file else { return }
            let footer = ShardFormat.encodeFooter(entries)
            try current.write(footer)
            try current.write(ShardFormat.encodeTrailer(footer: footer))
            try current.commit()
            shards.append(
                ShardManifest.Shard(
                    file: URL(fileURLWithPath: current.path).lastPathComponent, bytes: current.size, xxh64: current.digest,
                    batches: entries.count))
            file = nil
            entries = []
        }

        while let batch = try prefetcher.next() {
            if file == nil {
                let name = ShardManifest.shardFileName(shards.count)
                file = try AtomicFile(path: (directory as NSString).appendingPathComponent(name))
            }
            let offset = UInt64(file!.size)
            try file!.write(batch.frame)
            entries.append(
                ShardFormat.Entry(
                    offset: offset, length: UInt64(batch.frame.count), uncompressed: UInt64(batch.uncompressedSize),
                    epoch: UInt32(batch.epoch), batch: UInt32(batch.batch), rank: UInt32(batch.rank), samples: UInt32(batch.sampleCount),
                    checksum: batch.checksum))
            totals.batches += 1
            totals.samples += batch.sampleCount
            totals.uncompressedBytes += batch.uncompressedSize
            totals.compressedBytes += batch.frame.count
            if file!.size >= targetShardBytes { try finishShard() }
            progress?(
                Progress(
                    batches: totals.batches, totalBatches: prefetcher.totalBatches, uncompressedBytes: totals.uncompressedBytes,
                    compressedBytes: totals.compressedBytes, elapsedSeconds: Date().timeIntervalSince(started)))
        }
        try finishShard()

        let plan = prefetcher.plan
        let manifest = ShardManifest(
            dataset: .init(version: plan.datasetVersion, maxId: plan.maxID, samples: plan.ids.count, fingerprint: plan.fingerprint),
            schema: schema,
            plan: .init(
                parameters: plan.parameters, firstEpoch: prefetcher.epochs.lowerBound, epochs: prefetcher.epochs.count,
                batchesPerEpoch: plan.plan.batchesPerEpoch, droppedPerEpoch: plan.plan.droppedPerEpoch,
                padLengths: prefetcher.configuration.padLengths),
            compression: ShardManifest.compression(level: prefetcher.configuration.compressionLevel), shards: shards, totals: totals,
            createdAt: Timestamp.now())
        try AtomicFile.write(try ShardManifest.encoder.encode(manifest).map { $0 } + [0x0A], to: manifestPath)
        try ShardDirectory.removeUnlisted(in: directory, keeping: Set(shards.map(\.file)))
        return manifest
    }
}

extension ShardWriter {
    /// The manifest of the shard set already in `directory` when it holds exactly these
    /// batches — same dataset version and plan, epochs, padding and compression — else nil.
    /// A re-run of `mbdata shard` then has nothing to do.
    public static func upToDate(
        _ directory: String, plan: DatasetPlan, epochs: Range<Int>, configuration: PrefetchConfiguration
    ) -> ShardManifest? {
        guard let manifest = try? ShardSet(directory: directory).manifest,
            manifest.serves(ShardRequirement(plan: plan, epochs: epochs, padLengths: configuration.padLengths)),
            manifest.plan.firstEpoch == epochs.lowerBound, manifest.plan.epochs == epochs.count,
            manifest.compression == ShardManifest.compression(level: configuration.compressionLevel)
        else { return nil }
        return manifest
    }
}

extension ShardManifest {
    static func compression(level: Int32) -> String { "lz4-frame level \(level)" }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// The files of a shard directory.
enum ShardDirectory {
    /// Creates the directory, or accepts an existing one that is empty or holds a shard set.
    static func prepare(_ directory: String) throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw MBDataError(.invalidArgument, "exists and is not a directory", source: directory)
            }
            let foreign = try manager.contentsOfDirectory(atPath: directory).filter {
                !$0.hasPrefix(".") && $0 != ShardManifest.fileName && !$0.hasSuffix("." + ShardFormat.fileExtension)
            }
            guard foreign.isEmpty else {
                throw MBDataError(
                    .invalidArgument, "holds files that are not shards (\(foreign.prefix(3).joined(separator: ", "))); choose an empty or shard directory",
                    source: directory)
            }
        } else {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
    }

    static func removeUnlisted(in directory: String, keeping: Set<String>) throws {
        let manager = FileManager.default
        for name in try manager.contentsOfDirectory(atPath: directory)
        where name.hasSuffix("." + ShardFormat.fileExtension) && !keeping.contains(name) {
            try manager.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
        }
    }
}
