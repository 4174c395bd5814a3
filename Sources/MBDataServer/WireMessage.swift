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

/// Batches ready to send: their whole messages (header and frame) built on a worker thread,
/// so the stream only writes them. One batch message, or a run of local batch messages,
/// which are a few hundred bytes each: written together, a run costs the daemon one write
/// and one wait for the event loop instead of one per batch (Benchmarks/README.md, serve).
struct OutgoingBatch: Sendable {
    /// The batches whose messages `message` holds, in order.
    var batches: [Int]
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
            return OutgoingBatch(batches: [frame.batch], frameBytes: frame.length, uncompressedBytes: frame.uncompressedSize, message: message)
        }
    }

    /// Local batch messages (protocol 1.3), one after another: the places of `locations`'
    /// frames, for a client on this host that reads each frame from the shard file itself.
    static func local(_ locations: [FrameLocation]) throws -> OutgoingBatch {
        var outgoing = OutgoingBatch(batches: [], frameBytes: 0, uncompressedBytes: 0, message: ByteBufferAllocator().buffer(capacity: 0))
        outgoing.batches.reserveCapacity(locations.count)
        for location in locations {
            let frame = location.frame
            let payload = Array(
                try WireJSON.encode(
                    LocalFrame(
                        path: location.path, device: location.device, inode: location.inode, offset: location.offset,
                        length: UInt64(frame.length), frameChecksum: frame.checksum)))
            WireHeader(
                kind: .localBatch, epoch: frame.epoch, batch: frame.batch, rank: frame.rank, samples: frame.sampleCount,
                uncompressed: frame.uncompressedSize, payloadLength: payload.count, checksum: ShardFormat.xxh64(payload)
            ).write(into: &outgoing.message)
            outgoing.message.writeBytes(payload)
            outgoing.batches.append(frame.batch)
            outgoing.frameBytes += frame.length
            outgoing.uncompressedBytes += frame.uncompressedSize
        }
        return outgoing
    }
}
