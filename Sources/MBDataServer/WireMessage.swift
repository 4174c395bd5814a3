import MBData
import NIOCore

/// One message of a batch stream (schemas/serve-protocol.md §4): a 56-byte header, then
/// the payload — an LZ4 frame for a batch, JSON for an end or an error.
enum WireMessage {
    static let magic: [UInt8] = Array("MBW1".utf8)
    static let headerSize = 56

    enum Kind: UInt8 {
        case batch = 1
        case end = 2
        case error = 3
    }

    static func end(reason: String, sent: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        json(kind: .end, #"{"reason":"\#(reason)","sent":\#(sent)}"#, allocator: allocator)
    }

    static func error(_ error: ServeError, allocator: ByteBufferAllocator) -> ByteBuffer {
        json(kind: .error, String(decoding: error.body, as: UTF8.self), allocator: allocator)
    }

    private static func json(kind: Kind, _ text: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        let payload = Array(text.utf8)
        var buffer = allocator.buffer(capacity: headerSize + payload.count)
        writeHeader(
            into: &buffer, kind: kind, epoch: 0, batch: 0, rank: 0, samples: 0, uncompressed: 0, length: payload.count,
            checksum: ShardFormat.xxh64(payload), lease: 0)
        buffer.writeBytes(payload)
        return buffer
    }

    static func writeHeader(
        into buffer: inout ByteBuffer, kind: Kind, epoch: Int, batch: Int, rank: Int, samples: Int, uncompressed: Int, length: Int,
        checksum: UInt64, lease: UInt64
    ) {
        buffer.writeBytes(magic)
        buffer.writeInteger(kind.rawValue, endianness: .little)
        buffer.writeBytes([0, 0, 0])
        for value in [epoch, batch, rank, samples] { buffer.writeInteger(UInt32(truncatingIfNeeded: value), endianness: .little) }
        buffer.writeInteger(UInt64(uncompressed), endianness: .little)
        buffer.writeInteger(UInt64(length), endianness: .little)
        buffer.writeInteger(checksum, endianness: .little)
        buffer.writeInteger(lease, endianness: .little)
    }
}

/// A batch ready to send: its whole message (header and frame) built on a worker thread,
/// so the stream only writes it.
struct OutgoingBatch: Sendable {
    var batch: Int
    var frameBytes: Int
    var uncompressedBytes: Int
    var message: ByteBuffer

    /// Blocking (reads or prepares the batch): call it from a worker thread. A spool frame
    /// is read straight into the message buffer.
    static func make(_ item: PlanItem, from producer: any BatchProducer, lease: UInt64 = 0) throws -> OutgoingBatch {
        try producer.withFrame(item) { frame, write in
            var message = ByteBufferAllocator().buffer(capacity: WireMessage.headerSize + frame.length)
            WireMessage.writeHeader(
                into: &message, kind: .batch, epoch: frame.epoch, batch: frame.batch, rank: frame.rank, samples: frame.sampleCount,
                uncompressed: frame.uncompressedSize, length: frame.length, checksum: frame.checksum, lease: lease)
            try message.writeWithUnsafeMutableBytes(minimumWritableBytes: frame.length) { buffer in
                try write(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<frame.length]))
                return frame.length
            }
            return OutgoingBatch(batch: frame.batch, frameBytes: frame.length, uncompressedBytes: frame.uncompressedSize, message: message)
        }
    }
}
