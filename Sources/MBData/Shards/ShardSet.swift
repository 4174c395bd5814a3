import Foundation

/// A shard directory opened for reading: its manifest and, per shard, the index footer.
public struct ShardSet: Sendable {
    public let directory: String
    public let manifest: ShardManifest
    /// Footer entries per shard file, in manifest order.
    public let entries: [[ShardFormat.Entry]]

    /// Opens a shard directory, checking the manifest, each shard's size, trailer and footer.
    public init(directory: String) throws {
        self.directory = directory
        let manifestPath = (directory as NSString).appendingPathComponent(ShardManifest.fileName)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        } catch {
            throw MBDataError(.invalidDataset, "not a shard directory: no readable \(ShardManifest.fileName)", source: directory)
        }
        let manifest: ShardManifest
        do {
            manifest = try ShardManifest.decoder.decode(ShardManifest.self, from: data)
        } catch {
            throw MBDataError(.invalidDataset, "manifest is not a valid mbdata shard manifest: \(error)", source: manifestPath)
        }
        guard manifest.format == ShardManifest.formatName else {
            throw MBDataError(.invalidDataset, "manifest format \(manifest.format), expected \(ShardManifest.formatName)", source: manifestPath)
        }
        self.manifest = manifest
        entries = try manifest.shards.map { shard in
            try Self.readFooter(path: (directory as NSString).appendingPathComponent(shard.file), expectedBytes: shard.bytes)
        }
    }

    static func readFooter(path: String, expectedBytes: Int) throws -> [ShardFormat.Entry] {
        guard let size = FileByteStream.size(of: path) else {
            throw MBDataError(.invalidDataset, "shard file is missing", source: path)
        }
        guard size == expectedBytes else {
            throw MBDataError(.invalidDataset, "shard holds \(size) bytes, the manifest says \(expectedBytes) (truncated or replaced)", source: path)
        }
        guard size >= ShardFormat.trailerSize + 8 else {
            throw MBDataError(.malformedRecord, "shard is too short for a footer and trailer", source: path)
        }
        var trailerStream = try FileByteStream(path: path, offset: size - ShardFormat.trailerSize)
        let trailer = try trailerStream.readExactly(ShardFormat.trailerSize, source: path, what: "shard trailer")
        guard Array(trailer[16..<24]) == ShardFormat.magic else {
            throw MBDataError(.malformedRecord, "bad shard trailer: magic number missing", source: path)
        }
        let footerLength = Int(clamping: (0..<8).reduce(UInt64(0)) { $0 | UInt64(trailer[$1]) << (8 * UInt64($1)) })
        let footerHash = (0..<8).reduce(UInt64(0)) { $0 | UInt64(trailer[8 + $1]) << (8 * UInt64($1)) }
        guard footerLength >= 8, footerLength <= size - ShardFormat.trailerSize else {
            throw MBDataError(.malformedRecord, "bad shard trailer: footer length \(footerLength) does not fit the file", source: path)
        }
        let footerStart = size - ShardFormat.trailerSize - footerLength
        var footerStream = try FileByteStream(path: path, offset: footerStart)
        let footer = try footerStream.readExactly(footerLength, source: path, what: "shard footer")
        guard ShardFormat.xxh64(footer) == footerHash else {
            throw MBDataError(.malformedRecord, "shard footer checksum mismatch", source: path)
        }
        return try ShardFormat.decodeFooter(footer, framesEnd: UInt64(footerStart), source: path)
    }

    /// Refuses a shard set that was not made from exactly this dataset version and plan.
    public func check(matches plan: DatasetPlan, epochs: Range<Int>? = nil) throws {
        guard manifest.dataset.fingerprint == plan.fingerprint, manifest.plan.parameters == plan.parameters else {
            throw MBDataError(
                .invalidDataset,
                "stale shards: made from dataset version \(manifest.dataset.version) (\(manifest.dataset.fingerprint)) with \(manifest.plan.parameters), asked for version \(plan.datasetVersion) (\(plan.fingerprint)) with \(plan.parameters)",
                source: directory)
        }
        if let epochs {
            let have = manifest.plan.firstEpoch..<(manifest.plan.firstEpoch + manifest.plan.epochs)
            guard have.lowerBound <= epochs.lowerBound, epochs.upperBound <= have.upperBound else {
                throw MBDataError(.invalidDataset, "shards hold epochs \(have), asked for \(epochs)", source: directory)
            }
        }
    }

    /// Reads one frame, checks its xxh64 and decodes it, checking liblz4's content checksum
    /// too (what `verify` uses).
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
        guard ShardFormat.xxh64(frame) == e.checksum else {
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
