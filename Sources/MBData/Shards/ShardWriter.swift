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
    /// returns the manifest written. Takes the prefetcher's batches as they are ready and
    /// writes each on the blocking executor, so the writer holds no thread while it waits.
    ///
    /// - Parameters:
    ///   - prefetcher: The batches to write, in order; it must not be consumed elsewhere.
    ///   - schema: The dataset's schema, recorded in the manifest.
    ///   - directory: Created if missing; an existing one must be empty or hold a shard set,
    ///     whose shards not rewritten are removed.
    ///   - targetShardBytes: A shard is closed once it holds this many bytes (default 256 MiB).
    ///   - progress: Called after every batch, on a thread of the blocking executor.
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when `directory` is a
    ///   file or holds other files; `MBDataError.Code.storage` when a shard or the manifest
    ///   cannot be written (the disk is full, say); what the prefetcher throws. A failed write
    ///   leaves no manifest, so the directory is never taken for a whole set.
    public static func write(
        _ prefetcher: Prefetcher, schema: Schema, to directory: String, targetShardBytes: Int = 256 << 20,
        progress: (@Sendable (Progress) -> Void)? = nil
    ) async throws -> ShardManifest {
        let plan = prefetcher.plan
        let (epochs, configuration) = (prefetcher.epochs, prefetcher.configuration)
        return try await write(prefetcher.batches(), totalBatches: prefetcher.totalBatches, to: directory, targetShardBytes: targetShardBytes, progress: progress) {
            shards, totals in
            ShardManifest(
                dataset: .init(version: plan.datasetVersion, maxId: plan.maxID, samples: plan.ids.count, fingerprint: plan.fingerprint),
                schema: schema,
                plan: .init(
                    parameters: plan.parameters, firstEpoch: epochs.lowerBound, epochs: epochs.count,
                    batchesPerEpoch: plan.plan.batchesPerEpoch, droppedPerEpoch: plan.plan.droppedPerEpoch,
                    padLengths: configuration.padLengths),
                compression: ShardManifest.compression(level: configuration.compressionLevel), shards: shards, totals: totals,
                createdAt: Timestamp.now())
        }
    }

    /// Writes `batches`, in order, into shard files in `directory` as they arrive (each on the
    /// blocking executor), then the manifest `manifest` makes of the shards and totals.
    static func write(
        _ batches: some AsyncSequence<ReadyBatch, any Error>, totalBatches: Int, to directory: String, targetShardBytes: Int,
        progress: (@Sendable (Progress) -> Void)?, manifest: @escaping @Sendable ([ShardManifest.Shard], ShardManifest.Totals) -> ShardManifest
    ) async throws -> ShardManifest {
        let started = Date()
        let sink = try await runBlocking { try ShardSetSink(directory: directory, targetShardBytes: targetShardBytes) }
        do {
            for try await batch in batches {
                let totals = try await runBlocking { try sink.append(batch) }
                progress?(
                    Progress(
                        batches: totals.batches, totalBatches: totalBatches, uncompressedBytes: totals.uncompressedBytes,
                        compressedBytes: totals.compressedBytes, elapsedSeconds: Date().timeIntervalSince(started)))
            }
            return try await runBlocking { try sink.finish(manifest) }
        } catch {
            // Here, not when the sink goes: a process that exits on the error must not
            // leave the temporary shard file behind.
            sink.discard()
            throw error
        }
    }
}

/// The files of one shard set being written, in the order `ShardWriter` describes. Its
/// blocking calls run one after another on the blocking executor (each awaited before the
/// next starts), never at once; that is what makes the unchecked `Sendable` safe.
final class ShardSetSink: @unchecked Sendable {
    private let directory: String
    private let targetShardBytes: Int
    private let manifestPath: String
    private var shards: [ShardManifest.Shard] = []
    private var totals = ShardManifest.Totals(batches: 0, samples: 0, uncompressedBytes: 0, compressedBytes: 0)
    private var file: AtomicFile?
    private var entries: [ShardFormat.Entry] = []

    init(directory: String, targetShardBytes: Int) throws {
        self.directory = directory
        self.targetShardBytes = targetShardBytes
        try ShardDirectory.prepare(directory)
        manifestPath = (directory as NSString).appendingPathComponent(ShardManifest.fileName)
        if FileManager.default.fileExists(atPath: manifestPath) {
            try FileManager.default.removeItem(atPath: manifestPath)
            AtomicFile.syncDirectory(of: manifestPath)
        }
    }

    /// Writes one batch's frame; returns the totals so far.
    func append(_ batch: ReadyBatch) throws -> ShardManifest.Totals {
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
        return totals
    }

    /// Closes and removes the shard file being written (two system calls, no data written).
    func discard() {
        file = nil
    }

    /// Closes the last shard, writes the manifest `makeManifest` builds and removes shard
    /// files the manifest does not list.
    func finish(
        _ makeManifest: ([ShardManifest.Shard], ShardManifest.Totals) -> ShardManifest
    ) throws -> ShardManifest {
        try finishShard()
        let manifest = makeManifest(shards, totals)
        try AtomicFile.write(try ShardManifest.encoder.encode(manifest).map { $0 } + [0x0A], to: manifestPath)
        try ShardDirectory.removeUnlisted(in: directory, keeping: Set(shards.map(\.file)))
        return manifest
    }

    private func finishShard() throws {
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
