import Foundation
import MBData
import MBDataWire
import NIOCore

/// One message of a batch stream (schemas/serve-protocol.md §4): a 56-byte header, then
/// the payload — an LZ4 frame for a batch, JSON for an end or an error.
enum WireMessage {
    static func end(reason: StreamEnd.Reason, sent: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        json(kind: .end, Array((try? WireJSON.encode(StreamEnd(reason: reason, sent: sent))) ?? Data()), allocator: allocator)
    }

    static func error(_ error: ServeError, allocator: ByteBufferAllocator) -> ByteBuffer {
        json(kind: .error, error.body, allocator: allocator)
    }

    private static func json(kind: WireHeader.Kind, _ payload: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: WireHeader.size + payload.count)
        WireHeader(kind: kind, payloadLength: payload.count, checksum: ShardFormat.xxh64(payload)).write(into: &buffer)
        buffer.writeBytes(payload)
        return buffer
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
            var message = ByteBufferAllocator().buffer(capacity: WireHeader.size + frame.length)
            WireHeader(
                kind: .batch, epoch: frame.epoch, batch: frame.batch, rank: frame.rank, samples: frame.sampleCount,
                uncompressed: frame.uncompressedSize, payloadLength: frame.length, checksum: frame.checksum, lease: lease
            ).write(into: &message)
            try message.writeWithUnsafeMutableBytes(minimumWritableBytes: frame.length) { buffer in
                try write(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<frame.length]))
                return frame.length
            }
            return OutgoingBatch(batch: frame.batch, frameBytes: frame.length, uncompressedBytes: frame.uncompressedSize, message: message)
        }
    }

    /// A local batch message (protocol 1.3): the place of `location`'s frame, for a client
    /// on this host that reads the frame from the shard file itself.
    static func local(_ location: FrameLocation) throws -> OutgoingBatch {
        let frame = location.frame
        let payload = Array(
            try WireJSON.encode(
                LocalFrame(
                    path: location.path, device: location.device, inode: location.inode, offset: location.offset, length: UInt64(frame.length),
                    frameChecksum: frame.checksum)))
        var message = ByteBufferAllocator().buffer(capacity: WireHeader.size + payload.count)
        WireHeader(
            kind: .localBatch, epoch: frame.epoch, batch: frame.batch, rank: frame.rank, samples: frame.sampleCount,
            uncompressed: frame.uncompressedSize, payloadLength: payload.count, checksum: ShardFormat.xxh64(payload)
        ).write(into: &message)
        message.writeBytes(payload)
        return OutgoingBatch(batch: frame.batch, frameBytes: frame.length, uncompressedBytes: frame.uncompressedSize, message: message)
    }
}
