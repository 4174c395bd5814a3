import Foundation
import MBData
import NIOCore

/// Splits a batch stream's body (schemas/serve-protocol.md §4) into messages as chunks
/// arrive; rejects a bad magic, kind or checksum.
struct WireDecoder {
    enum Message {
        case batch(ReadyBatch, lease: UInt64)
        case end(reason: String)
        case failure(MBDataError)
    }

    static let headerSize = 56
    private var buffer = ByteBuffer()
    let source: String

    init(source: String) { self.source = source }

    mutating func append(_ chunk: ByteBuffer) {
        var chunk = chunk
        buffer.writeBuffer(&chunk)
    }

    /// The next complete message, nil until more bytes arrive.
    mutating func next() throws -> Message? {
        guard buffer.readableBytes >= Self.headerSize else { return nil }
        let start = buffer.readerIndex
        func u32(_ offset: Int) -> Int { Int(buffer.getInteger(at: start + offset, endianness: .little, as: UInt32.self)!) }
        func u64(_ offset: Int) -> UInt64 { buffer.getInteger(at: start + offset, endianness: .little, as: UInt64.self)! }
        guard buffer.getBytes(at: start, length: 4) == Array("MBW1".utf8) else {
            throw MBDataError(.malformedRecord, "bad message: magic MBW1 missing", source: source)
        }
        let kind = buffer.getInteger(at: start + 4, as: UInt8.self)!
        let length = Int(clamping: u64(32))
        guard length <= 1 << 31 else { throw MBDataError(.malformedRecord, "bad message: payload length \(length)", source: source) }
        guard buffer.readableBytes >= Self.headerSize + length else { return nil }
        let payload = buffer.getBytes(at: start + Self.headerSize, length: length)!
        let checksum = u64(40)
        let batch = ReadyBatch(
            epoch: u32(8), batch: u32(12), rank: u32(16), sampleCount: u32(20), uncompressedSize: Int(clamping: u64(24)),
            frame: payload, checksum: checksum)
        let lease = u64(48)
        buffer.moveReaderIndex(forwardBy: Self.headerSize + length)
        buffer.discardReadBytes()
        switch kind {
        case 1:
            return .batch(batch, lease: lease)
        case 2, 3:
            guard ShardFormat.xxh64(payload) == checksum else {
                throw MBDataError(.malformedRecord, "bad message: checksum mismatch", source: source)
            }
            let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]
            if kind == 2 { return .end(reason: object?["reason"] as? String ?? "complete") }
            let detail = object?["error"] as? [String: Any]
            return .failure(
                MBDataError(
                    .unreadableSource, "the daemon failed the stream: \(detail?["code"] as? String ?? "error"): \(detail?["message"] as? String ?? "")",
                    source: source))
        default:
            throw MBDataError(.malformedRecord, "bad message: unknown kind \(kind)", source: source)
        }
    }
}
