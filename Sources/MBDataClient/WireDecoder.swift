import Foundation
import MBData
import MBDataWire
import NIOCore

/// Splits a batch stream's body (schemas/serve-protocol.md §4) into messages as chunks
/// arrive; rejects a bad magic, kind or checksum.
struct WireDecoder {
    enum Message {
        case batch(ReadyBatch, lease: UInt64)
        case end(reason: String)
        case failure(MBDataError)
    }

    private var buffer = ByteBuffer()
    let source: String

    init(source: String) { self.source = source }

    mutating func append(_ chunk: ByteBuffer) {
        var chunk = chunk
        buffer.writeBuffer(&chunk)
    }

    /// The next complete message, nil until more bytes arrive.
    mutating func next() throws -> Message? {
        let peeked: WireHeader?
        do {
            peeked = try WireHeader.peek(buffer)
        } catch {
            throw MBDataError(.malformedRecord, "bad message: magic MBW1 missing", source: source)
        }
        guard let header = peeked else { return nil }
        let length = header.payloadLength
        guard length <= 1 << 31 else { throw MBDataError(.malformedRecord, "bad message: payload length \(length)", source: source) }
        guard buffer.readableBytes >= WireHeader.size + length else { return nil }
        let payload = buffer.getBytes(at: buffer.readerIndex + WireHeader.size, length: length)!
        buffer.moveReaderIndex(forwardBy: WireHeader.size + length)
        buffer.discardReadBytes()
        switch WireHeader.Kind(rawValue: header.kind) {
        case .batch:
            let batch = ReadyBatch(
                epoch: header.epoch, batch: header.batch, rank: header.rank, sampleCount: header.samples,
                uncompressedSize: header.uncompressed, frame: payload, checksum: header.checksum)
            return .batch(batch, lease: header.lease)
        case .end, .error:
            guard ShardFormat.xxh64(payload) == header.checksum else {
                throw MBDataError(.malformedRecord, "bad message: checksum mismatch", source: source)
            }
            let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]
            if header.kind == WireHeader.Kind.end.rawValue { return .end(reason: object?["reason"] as? String ?? "complete") }
            let detail = object?["error"] as? [String: Any]
            return .failure(
                MBDataError(
                    .unreadableSource, "the daemon failed the stream: \(detail?["code"] as? String ?? "error"): \(detail?["message"] as? String ?? "")",
                    source: source))
        case nil:
            throw MBDataError(.malformedRecord, "bad message: unknown kind \(header.kind)", source: source)
        }
    }
}
