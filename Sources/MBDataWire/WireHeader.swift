import NIOCore

/// The 56-byte header of every message of a batch stream (schemas/serve-protocol.md §4),
/// little-endian: magic `MBW1`, kind u8 and three zero bytes, then epoch, batch, rank and
/// samples (u32), uncompressed bytes, payload length, xxh64 of the payload and lease (u64).
/// The daemon writes it and the Swift client reads it; this is the one place that lays it out.
package struct WireHeader: Sendable, Hashable {
    /// Bytes of a header.
    package static let size = 56
    /// The first four bytes of every header: `MBW1`.
    package static let magic: [UInt8] = Array("MBW1".utf8)

    /// What a message carries.
    package enum Kind: UInt8, Sendable {
        /// A batch: the payload is its LZ4 frame.
        case batch = 1
        /// The end of the stream: the payload is JSON `{"reason": "complete" | "draining", "sent": n}`.
        case end = 2
        /// A failure: the payload is the JSON error envelope.
        case error = 3
        /// A spooled batch a client on the daemon's host reads from the shard file itself
        /// (protocol 1.3, `delivery=local`): the payload is JSON, a ``LocalFrame``.
        case localBatch = 4
    }

    /// The raw kind byte, so that a reader can name an unknown one.
    package var kind: UInt8
    /// The batch's epoch (0 for end and error messages).
    package var epoch: Int
    /// The global batch index within the epoch.
    package var batch: Int
    /// The rank whose slice of the global batch the frame holds.
    package var rank: Int
    /// Real (non-padding) samples in the batch.
    package var samples: Int
    /// Bytes the frame decodes to.
    package var uncompressed: Int
    /// Bytes of the payload that follows the header.
    package var payloadLength: Int
    /// xxh64 (seed 0) of the payload.
    package var checksum: UInt64
    /// The lease id of a batch handed out in share mode, else 0.
    package var lease: UInt64

    /// A header; the raw ``kind`` byte is `kind`'s.
    package init(
        kind: Kind, epoch: Int = 0, batch: Int = 0, rank: Int = 0, samples: Int = 0, uncompressed: Int = 0, payloadLength: Int,
        checksum: UInt64, lease: UInt64 = 0
    ) {
        self.kind = kind.rawValue
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
        self.samples = samples
        self.uncompressed = uncompressed
        self.payloadLength = payloadLength
        self.checksum = checksum
        self.lease = lease
    }

    /// Appends the 56 header bytes to `buffer`.
    package func write(into buffer: inout ByteBuffer) {
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(kind, endianness: .little)
        buffer.writeBytes([0, 0, 0])
        for value in [epoch, batch, rank, samples] { buffer.writeInteger(UInt32(truncatingIfNeeded: value), endianness: .little) }
        for value in [UInt64(truncatingIfNeeded: uncompressed), UInt64(truncatingIfNeeded: payloadLength), checksum, lease] { buffer.writeInteger(value, endianness: .little) }
    }

    /// A header that does not start with the magic.
    package struct BadMagic: Error {}

    /// The header at `buffer`'s reader index, which is not moved; nil while fewer than
    /// `size` bytes are readable.
    package static func peek(_ buffer: ByteBuffer) throws(BadMagic) -> WireHeader? {
        guard buffer.readableBytes >= size else { return nil }
        let start = buffer.readerIndex
        guard buffer.getBytes(at: start, length: 4) == magic else { throw BadMagic() }
        func u32(_ offset: Int) -> Int { Int(buffer.getInteger(at: start + offset, endianness: .little, as: UInt32.self)!) }
        func u64(_ offset: Int) -> UInt64 { buffer.getInteger(at: start + offset, endianness: .little, as: UInt64.self)! }
        var header = WireHeader(
            kind: .batch, epoch: u32(8), batch: u32(12), rank: u32(16), samples: u32(20), uncompressed: Int(clamping: u64(24)),
            payloadLength: Int(clamping: u64(32)), checksum: u64(40), lease: u64(48))
        header.kind = buffer.getInteger(at: start + 4, as: UInt8.self)!
        return header
    }
}
