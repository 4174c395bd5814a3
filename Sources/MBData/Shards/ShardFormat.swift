/// The binary layout of a shard file (specified in `schemas/shard-format.md`):
///
///     frame 0 | frame 1 | … | footer | trailer
///     footer  = entry count (u64) + one 48-byte entry per frame
///     entry   = offset u64, length u64, uncompressed u64, epoch u32, batch u32, rank u32,
///               samples u32, xxh64 of the frame u64
///     trailer = footer length u64, xxh64 of the footer u64, magic "MBSHARD1"
///
/// All integers little-endian. ``ShardSet`` reads this layout and ``ShardWriter`` writes it;
/// ``ShardSet/entries`` holds every footer ``Entry``.
public enum ShardFormat {
    package static let magic: [UInt8] = Array("MBSHARD1".utf8)
    package static let entrySize = 48
    package static let trailerSize = 24
    package static let fileExtension = "mbshard"

    /// Where one batch's frame lies in a shard, and what it holds.
    public struct Entry: Sendable, Hashable, Codable {
        /// Byte offset of the frame from the start of the shard file.
        public var offset: UInt64
        /// Bytes of the LZ4 frame.
        public var length: UInt64
        /// Bytes of the safetensors buffer the frame decodes to.
        public var uncompressed: UInt64
        /// The epoch of the batch.
        public var epoch: UInt32
        /// The global batch index within the epoch.
        public var batch: UInt32
        /// The rank whose slice of the global batch the frame holds.
        public var rank: UInt32
        /// Real (non-padding) samples in the batch.
        public var samples: UInt32
        /// xxh64 (seed 0) of the frame's bytes, checked before the frame is decoded.
        public var checksum: UInt64
    }

    static func encodeFooter(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(8 + entries.count * entrySize)
        ElementEncoding.appendLittleEndian(UInt64(entries.count), to: &out)
        for e in entries {
            for value in [e.offset, e.length, e.uncompressed] { ElementEncoding.appendLittleEndian(value, to: &out) }
            for value in [e.epoch, e.batch, e.rank, e.samples] { ElementEncoding.appendLittleEndian(value, to: &out) }
            ElementEncoding.appendLittleEndian(e.checksum, to: &out)
        }
        return out
    }

    static func encodeTrailer(footer: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        ElementEncoding.appendLittleEndian(UInt64(footer.count), to: &out)
        ElementEncoding.appendLittleEndian(xxh64(footer), to: &out)
        return out + magic
    }

    /// XXH64 (seed 0): the checksum of frames in shard footers and on the wire.
    package static func xxh64(_ bytes: [UInt8]) -> UInt64 { XXH64.digest(bytes) }

    /// XXH64 (seed 0) of the bytes in `bytes`.
    package static func xxh64(_ bytes: UnsafeRawBufferPointer) -> UInt64 { XXH64.digest(bytes) }

    /// The largest batch (decoded safetensors buffer) a reader accepts, 2 GiB: a footer entry
    /// or frame header declaring more is refused before anything is allocated.
    package static let maxBatchBytes = 1 << 31

    /// The entries of a whole shard file held in memory: the trailer, the footer's length and
    /// hash, and every entry checked as `ShardSet` checks a file on disk (the fuzz target's
    /// entry point). Throws `MBDataError` (`.corruptData`) on any malformed input.
    package static func entries(inFile bytes: [UInt8], source: String = "shard") throws -> [Entry] {
        guard bytes.count >= trailerSize + 8 else {
            throw MBDataError(.corruptData, "shard of \(bytes.count) bytes is too short for a footer and trailer", source: source)
        }
        let (footerLength, footerHash) = try decodeTrailer(bytes[(bytes.count - trailerSize)...], fileSize: bytes.count, source: source)
        let footerStart = bytes.count - trailerSize - footerLength
        let footer = Array(bytes[footerStart..<(bytes.count - trailerSize)])
        return try decodeFooter(footer, hash: footerHash, framesEnd: footerStart, source: source)
    }

    /// The footer's length and xxh64 from the 24-byte trailer of a `fileSize`-byte file,
    /// the length checked to fit the file before the trailer.
    package static func decodeTrailer(_ trailer: ArraySlice<UInt8>, fileSize: Int, source: String) throws -> (length: Int, hash: UInt64) {
        let trailer = Array(trailer)
        guard trailer.count == trailerSize, Array(trailer[16..<24]) == magic else {
            throw MBDataError(.corruptData, "bad shard trailer: magic number missing", source: source)
        }
        let length = littleEndianU64(trailer, at: 0)
        guard fileSize >= trailerSize, length >= 8, length <= UInt64(fileSize - trailerSize), (length - 8) % UInt64(entrySize) == 0 else {
            throw MBDataError(
                .corruptData, "bad shard trailer: footer length \(length) does not fit the \(fileSize)-byte file as 8 + 48·n bytes",
                source: source)
        }
        return (Int(length), littleEndianU64(trailer, at: 8))
    }

    /// Checks a footer's hash, then parses it (``decodeFooter(_:framesEnd:source:)``).
    package static func decodeFooter(_ bytes: [UInt8], hash: UInt64, framesEnd: Int, source: String) throws -> [Entry] {
        guard xxh64(bytes) == hash else { throw MBDataError(.corruptData, "shard footer checksum mismatch", source: source) }
        return try decodeFooter(bytes, framesEnd: UInt64(framesEnd), source: source)
    }

    /// Parses a footer and checks that its entries tile the `framesEnd` bytes before it
    /// exactly (first at 0, contiguous, the last ending at the footer), each declaring a
    /// decoded size in `1 … maxBatchBytes`. No arithmetic on a stored value can overflow:
    /// every count, offset and length is compared with what contains it first.
    static func decodeFooter(_ bytes: [UInt8], framesEnd end: UInt64, source: String) throws -> [Entry] {
        guard bytes.count >= 8, (bytes.count - 8) % entrySize == 0 else {
            throw MBDataError(.corruptData, "shard footer of \(bytes.count) bytes is not 8 + 48·n bytes", source: source)
        }
        let count = (bytes.count - 8) / entrySize
        let declared = littleEndianU64(bytes, at: 0)
        guard declared == UInt64(count) else {
            throw MBDataError(.corruptData, "shard footer declares \(declared) entries but holds \(count)", source: source)
        }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var expectedOffset: UInt64 = 0
        for index in 0..<count {
            let p = 8 + index * entrySize
            let entry = Entry(
                offset: littleEndianU64(bytes, at: p), length: littleEndianU64(bytes, at: p + 8), uncompressed: littleEndianU64(bytes, at: p + 16),
                epoch: littleEndianU32(bytes, at: p + 24), batch: littleEndianU32(bytes, at: p + 28), rank: littleEndianU32(bytes, at: p + 32),
                samples: littleEndianU32(bytes, at: p + 36), checksum: littleEndianU64(bytes, at: p + 40))
            // expectedOffset <= end holds here, so `end - entry.offset` cannot wrap.
            guard entry.offset == expectedOffset, entry.length > 0, entry.length <= end - entry.offset else {
                throw MBDataError(
                    .corruptData,
                    "shard footer entry \(index) (offset \(entry.offset), length \(entry.length)) does not follow the frame before it inside the \(end) bytes of frames",
                    source: source)
            }
            guard entry.uncompressed > 0, entry.uncompressed <= UInt64(maxBatchBytes) else {
                throw MBDataError(
                    .corruptData, "shard footer entry \(index) declares a \(entry.uncompressed)-byte batch, outside 1…\(maxBatchBytes)",
                    source: source)
            }
            expectedOffset = entry.offset + entry.length
            entries.append(entry)
        }
        guard expectedOffset == end else {
            throw MBDataError(.corruptData, "shard frames end at \(expectedOffset) but the footer starts at \(end)", source: source)
        }
        return entries
    }

    static func littleEndianU64<C: RandomAccessCollection>(_ bytes: C, at offset: Int) -> UInt64 where C.Element == UInt8, C.Index == Int {
        ElementEncoding.littleEndianU64(bytes, at: offset)
    }

    static func littleEndianU32<C: RandomAccessCollection>(_ bytes: C, at offset: Int) -> UInt32 where C.Element == UInt8, C.Index == Int {
        ElementEncoding.littleEndianU32(bytes, at: offset)
    }
}
