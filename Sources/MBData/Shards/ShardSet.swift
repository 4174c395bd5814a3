import Foundation

/// A shard directory opened for reading: its manifest and, per shard, the index footer.
///
/// Opening it reads only the manifest and the footers; frames are read on demand. A value
/// of this type is immutable and may be shared between threads; its methods block on file
/// I/O, so call them from a worker thread rather than from the cooperative pool.
public struct ShardSet: Sendable {
    /// The shard directory, as given.
    public let directory: String
    /// The validated manifest.
    public let manifest: ShardManifest
    /// Footer entries per shard file, in manifest order.
    public let entries: [[ShardFormat.Entry]]

    /// The largest `manifest.json` read: far above any real one (a shard entry takes about
    /// 120 bytes), so a huge or endless file is refused instead of read into memory.
    package static let maxManifestBytes = 64 << 20

    /// Opens a shard directory, checking before any frame is read what can be checked
    /// without reading frames: the manifest (``ShardManifest/parse(_:source:)``), each
    /// shard's size, trailer and footer, and that the footers' frames run through exactly the
    /// plan's (epoch, batch, rank) triples in order, with the sample counts the plan implies
    /// and the byte totals the manifest declares. The loader and `serve --spool` open shard
    /// sets here, so a stale, truncated or edited set is refused before a byte is served.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidDataset` when there is no
    ///   readable manifest, a shard file is missing or of another size than listed;
    ///   `MBDataError.Code.corruptData` when the manifest, a trailer or a footer fails a
    ///   check; `MBDataError.Code.unreadableSource` when a file cannot be read.
    public init(directory: String) throws {
        let manifestPath = (directory as NSString).appendingPathComponent(ShardManifest.fileName)
        guard let size = FileByteStream.size(of: manifestPath), let handle = FileHandle(forReadingAtPath: manifestPath) else {
            throw MBDataError(.invalidDataset, "not a shard directory: no readable \(ShardManifest.fileName)", source: directory)
        }
        defer { try? handle.close() }
        guard size <= Self.maxManifestBytes else {
            throw MBDataError(.corruptData, "manifest of \(size) bytes is larger than any shard set's (\(Self.maxManifestBytes))", source: manifestPath)
        }
        let data: Data
        do {
            data = try handle.read(upToCount: Self.maxManifestBytes + 1) ?? Data()
        } catch {
            throw MBDataError(.unreadableSource, "cannot read \(ShardManifest.fileName)", source: manifestPath, cause: error)
        }
        let manifest = try ShardManifest.parse([UInt8](data), source: manifestPath)
        try self.init(
            directory: directory, manifest: manifest,
            entries: manifest.shards.map { shard in
                try Self.readFooter(path: (directory as NSString).appendingPathComponent(shard.file), expectedBytes: shard.bytes)
            })
    }

    /// A set whose manifest and footers were read elsewhere (an HTTP origin's, by range),
    /// refused unless the footers' frames are exactly what the manifest's plan implies.
    package init(directory: String, manifest: ShardManifest, entries: [[ShardFormat.Entry]]) throws {
        try Self.checkFrames(of: manifest, entries: entries, directory: directory)
        self.directory = directory
        self.manifest = manifest
        self.entries = entries
    }

    /// The footer entries of the shard at `path`, after checking its size, trailer and footer hash.
    package static func readFooter(path: String, expectedBytes: Int) throws -> [ShardFormat.Entry] {
        guard let size = FileByteStream.size(of: path) else {
            throw MBDataError(.invalidDataset, "shard file is missing", source: path)
        }
        guard size == expectedBytes else {
            throw MBDataError(.invalidDataset, "shard holds \(size) bytes, the manifest says \(expectedBytes) (truncated or replaced)", source: path)
        }
        guard size >= ShardFormat.trailerSize + 8 else {
            throw MBDataError(.corruptData, "shard is too short for a footer and trailer", source: path)
        }
        let file = try ShardFile(path: path)
        let (footerLength, footerHash) = try ShardFormat.decodeTrailer(
            try file.copy((size - ShardFormat.trailerSize)..<size)[...], fileSize: size, source: path)
        let footerStart = size - ShardFormat.trailerSize - footerLength
        let footer = try file.copy(footerStart..<(size - ShardFormat.trailerSize))
        return try ShardFormat.decodeFooter(footer, hash: footerHash, framesEnd: footerStart, source: path)
    }

    /// Checks the footers against the manifest: each holds `shards[].batches` frames; the
    /// frames, in manifest order, are exactly the triples (epoch, batch, rank) of §3 of the
    /// format, in order; each holds the samples its place in the plan implies; and the frames'
    /// sizes add up to `totals`. The manifest was validated, so none of this can overflow.
    static func checkFrames(of manifest: ShardManifest, entries: [[ShardFormat.Entry]], directory: String) throws {
        let plan = manifest.plan
        let world = plan.parameters.world
        let globalBatch = plan.parameters.batchSize
        let localBatch = globalBatch / world
        let framesPerEpoch = plan.batchesPerEpoch * world
        var position = 0
        var uncompressed = 0
        var compressed = 0
        var overflow = false
        for (shard, frames) in zip(manifest.shards, entries) {
            let path = (directory as NSString).appendingPathComponent(shard.file)
            guard frames.count == shard.batches else {
                throw MBDataError(.corruptData, "the footer lists \(frames.count) frames, the manifest says \(shard.batches)", source: path)
            }
            for (index, entry) in frames.enumerated() {
                // position < totals.batches = epochs × framesPerEpoch: validated sums.
                let epoch = plan.firstEpoch + position / framesPerEpoch
                let batch = position % framesPerEpoch / world
                let rank = position % world
                guard Int(entry.epoch) == epoch, Int(entry.batch) == batch, Int(entry.rank) == rank else {
                    throw MBDataError(
                        .corruptData,
                        "frame \(index) is epoch \(entry.epoch) batch \(entry.batch) rank \(entry.rank); frame \(position) of the set must be epoch \(epoch) batch \(batch) rank \(rank) (frames run in (epoch, batch, rank) order through the shards in manifest order)",
                        source: path)
                }
                let expectedSamples = max(0, min(localBatch, manifest.dataset.samples - (batch * globalBatch + rank * localBatch)))
                guard Int(entry.samples) == expectedSamples else {
                    throw MBDataError(
                        .corruptData, "frame \(index) (epoch \(epoch) batch \(batch) rank \(rank)) declares \(entry.samples) samples, the plan puts \(expectedSamples) there",
                        source: path)
                }
                if let sum = CheckedSize.sum(uncompressed, Int(entry.uncompressed)) { uncompressed = sum } else { overflow = true }
                if let sum = CheckedSize.sum(compressed, Int(entry.length)) { compressed = sum } else { overflow = true }
                position += 1
            }
        }
        guard !overflow, uncompressed == manifest.totals.uncompressedBytes, compressed == manifest.totals.compressedBytes else {
            throw MBDataError(
                .corruptData,
                "the frames hold \(uncompressed) bytes decoded and \(compressed) compressed; the manifest's totals say \(manifest.totals.uncompressedBytes) and \(manifest.totals.compressedBytes)",
                source: directory)
        }
    }

    /// Refuses a shard set that was not made from exactly this dataset version and plan
    /// (and, when given, schema and epochs): ``ShardManifest/check(serves:source:)``.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidDataset`, saying what differs.
    public func check(matches plan: DatasetPlan, schema: Schema? = nil, epochs: Range<Int>? = nil) throws {
        try manifest.check(serves: ShardRequirement(plan: plan, schema: schema, epochs: epochs), source: directory)
    }

    /// Opens a shard directory off the cooperative pool (it reads the manifest and every
    /// footer) and refuses it unless it serves `requirement`.
    public static func open(_ directory: String, serving requirement: ShardRequirement) async throws -> ShardSet {
        try await runBlocking {
            let shards = try ShardSet(directory: directory)
            try shards.manifest.check(serves: requirement, source: directory)
            return shards
        }
    }

    /// Reads one frame, checks its xxh64 and decodes it, checking liblz4's content checksum
    /// too (what `verify` uses). Returns the safetensors buffer.
    ///
    /// - Parameters:
    ///   - shard: The shard's index in ``ShardManifest/shards`` (a precondition: in range).
    ///   - entry: The frame's index in that shard's ``entries`` (a precondition: in range).
    ///   - limit: The largest decoded size accepted, in bytes (default 2 GiB).
    /// - Throws: `MBDataError`: `MBDataError.Code.malformedRecord` on a checksum mismatch,
    ///   `MBDataError.Code.corruptData` when the frame does not decode as its entry says,
    ///   `MBDataError.Code.unreadableSource` when the file cannot be read.
    public func batch(shard: Int, entry: Int, limit: Int = 1 << 31) throws -> [UInt8] {
        let path = (directory as NSString).appendingPathComponent(manifest.shards[shard].file)
        let e = entries[shard][entry]
        var stream = try FileByteStream(path: path, offset: Int(e.offset), hashing: false)
        let frame = try stream.readExactly(Int(e.length), source: path, what: "frame of batch \(e.batch)")
        return try frame.withUnsafeBytes { try decode($0, entry: e, path: path, limit: limit, contentChecksum: true) }
    }

    /// Reads one frame from an open shard, checks its xxh64 and decodes it.
    func batch(file: ShardFile, entry: Int, shard: Int, limit: Int = 1 << 31) throws -> [UInt8] {
        let e = entries[shard][entry]
        let frame = try file.copy(Int(e.offset)..<Int(e.offset + e.length))
        return try frame.withUnsafeBytes { try decode($0, entry: e, path: file.path, limit: limit, contentChecksum: false) }
    }

    /// The footer's xxh64 covers every byte of the frame, so the loader's path skips liblz4's
    /// own content checksum (an xxh32 of the decoded bytes, which took most of a decode).
    private func decode(
        _ frame: UnsafeRawBufferPointer, entry e: ShardFormat.Entry, path: String, limit: Int, contentChecksum: Bool
    ) throws -> [UInt8] {
        guard XXH64.digest(frame) == e.checksum else {
            throw MBDataError(.malformedRecord, "checksum mismatch in the frame of epoch \(e.epoch) batch \(e.batch) rank \(e.rank)", source: path)
        }
        do {
            let decoded = try LZ4Frame.decompress(frame, limit: limit, verifyingContentChecksum: contentChecksum)
            guard decoded.count == Int(e.uncompressed) else {
                throw MBDataError(.malformedRecord, "frame decodes to \(decoded.count) bytes, the footer says \(e.uncompressed)")
            }
            return decoded
        } catch let error as MBDataError {
            throw error.located(source: path, location: "epoch \(e.epoch) batch \(e.batch) rank \(e.rank)")
        }
    }
}
