/// The binary layout of a shard file (specified in `schemas/shard-format.md`):
///
///     frame 0 | frame 1 | … | footer | trailer
///     footer  = entry count (u64) + one 48-byte entry per frame
///     entry   = offset u64, length u64, uncompressed u64, epoch u32, batch u32, rank u32,
///               samples u32, xxh64 of the frame u64
///     trailer = footer length u64, xxh64 of the footer u64, magic "MBSHARD1"
///
/// All integers little-endian.
public enum ShardFormat {
    public static let magic: [UInt8] = Array("MBSHARD1".utf8)
    public static let entrySize = 48
    public static let trailerSize = 24
    public static let fileExtension = "mbshard"

    /// Where one batch's frame lies in a shard, and what it holds.
    public struct Entry: Sendable, Hashable, Codable {
        public var offset: UInt64
        public var length: UInt64
        public var uncompressed: UInt64
        public var epoch: UInt32
        public var batch: UInt32
        public var rank: UInt32
        public var samples: UInt32
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
    public static func xxh64(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { xxh64($0) }
    }

    public static func xxh64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash = XXH64()
        hash.update(bytes)
        return hash.finalize()
    }

    /// Parses and checks a footer against the size of the frames region before it.
    static func decodeFooter(_ bytes: [UInt8], framesEnd: UInt64, source: String) throws -> [Entry] {
        func u64(_ i: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) } }
        func u32(_ i: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[i + $1]) << (8 * UInt32($1)) } }
        guard bytes.count >= 8 else { throw MBDataError(.malformedRecord, "shard footer is too short", source: source) }
        let count = Int(clamping: u64(0))
        guard bytes.count == 8 + count * entrySize else {
            throw MBDataError(.malformedRecord, "shard footer declares \(count) entries but holds \(bytes.count) bytes", source: source)
        }
        var entries: [Entry] = []
        var expectedOffset: UInt64 = 0
        for index in 0..<count {
            let p = 8 + index * entrySize
            let entry = Entry(
                offset: u64(p), length: u64(p + 8), uncompressed: u64(p + 16), epoch: u32(p + 24), batch: u32(p + 28),
                rank: u32(p + 32), samples: u32(p + 36), checksum: u64(p + 40))
            guard entry.offset == expectedOffset, entry.length > 0, entry.offset + entry.length <= framesEnd else {
                throw MBDataError(
                    .malformedRecord, "shard footer entry \(index) points at bytes \(entry.offset)..<\(entry.offset + entry.length), outside the frames",
                    source: source)
            }
            expectedOffset = entry.offset + entry.length
            entries.append(entry)
        }
        guard expectedOffset == framesEnd else {
            throw MBDataError(.malformedRecord, "shard frames end at \(expectedOffset) but the footer starts at \(framesEnd)", source: source)
        }
        return entries
    }
}
