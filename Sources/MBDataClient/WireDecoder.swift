import Foundation
import MBDataTraining
import MBDataWire
import NIOCore

/// Splits a batch stream's body (schemas/serve-protocol.md §4) into messages as chunks
/// arrive; rejects a bad magic, kind or checksum, and a size that does not fit the limits
/// below before anything of that size is allocated or waited for.
package struct WireDecoder {
    /// The largest batch payload, and the largest safetensors buffer a frame may declare (1 GiB).
    package static let maxPayload = 1 << 30
    /// The largest JSON payload of an end or error message (1 MiB).
    package static let maxJSONPayload = 1 << 20

    package enum Message {
        case batch(ReadyBatch, lease: UInt64)
        case end(reason: StreamEnd.Reason)
        case failure(MBDataError)
    }

    private var buffer = ByteBuffer()
    let source: String

    package init(source: String) { self.source = source }

    package mutating func append(_ chunk: ByteBuffer) {
        var chunk = chunk
        buffer.writeBuffer(&chunk)
    }

    /// The next complete message, nil until more bytes arrive.
    package mutating func next() throws -> Message? {
        let peeked: WireHeader?
        do {
            peeked = try WireHeader.peek(buffer)
        } catch {
            throw MBDataError(.corruptData, "bad message: magic MBW1 missing", source: source)
        }
        guard let header = peeked else { return nil }
        try check(header)
        let length = header.payloadLength
        guard buffer.readableBytes >= WireHeader.size + length else { return nil }
        guard let payload = buffer.getBytes(at: buffer.readerIndex + WireHeader.size, length: length) else { return nil }
        buffer.moveReaderIndex(forwardBy: WireHeader.size + length)
        buffer.discardReadBytes()
        switch WireHeader.Kind(rawValue: header.kind) {
        case .batch:
            let batch = ReadyBatch(
                epoch: header.epoch, batch: header.batch, rank: header.rank, sampleCount: header.samples,
                uncompressedSize: header.uncompressed, frame: payload, checksum: header.checksum)
            return .batch(batch, lease: header.lease)
        case .end, .error:
            guard XXH64.digest(payload) == header.checksum else {
                throw MBDataError(.corruptData, "bad message: checksum mismatch", source: source)
            }
            if header.kind == WireHeader.Kind.end.rawValue {
                guard let end = try? WireJSON.decode(StreamEnd.self, from: Data(payload)) else {
                    throw MBDataError(.corruptData, "bad message: an end message's payload is not {\"reason\", \"sent\"}", source: source)
                }
                return .end(reason: end.reason)
            }
            let detail = ErrorEnvelope.detail(in: payload)
            return .failure(
                MBDataError(
                    .unavailable, "the daemon failed the stream: \(detail?.code ?? "error"): \(detail?.message ?? "")", source: source))
        case .localBatch, nil:
            throw MBDataError(.corruptData, "bad message: unknown kind \(header.kind)", source: source)
        }
    }

    /// The header's kind and sizes against the protocol's limits.
    private func check(_ header: WireHeader) throws {
        func refuse(_ message: String) -> MBDataError {
            MBDataError(.corruptData, "bad message (epoch \(header.epoch), batch \(header.batch)): \(message)", source: source)
        }
        switch WireHeader.Kind(rawValue: header.kind) {
        case .batch:
            guard (1...Self.maxPayload).contains(header.payloadLength) else {
                throw refuse("payload of \(header.payloadLength) bytes, expected 1...\(Self.maxPayload)")
            }
            guard (1...Self.maxPayload).contains(header.uncompressed) else {
                throw refuse("\(header.uncompressed) uncompressed bytes, expected 1...\(Self.maxPayload)")
            }
        case .end, .error:
            guard header.payloadLength <= Self.maxJSONPayload else {
                throw refuse("JSON payload of \(header.payloadLength) bytes exceeds \(Self.maxJSONPayload)")
            }
        case .localBatch:
            // Sent only to a client that asks for `delivery=local`, which this one never does.
            throw refuse("a local batch, which this client does not ask for")
        case nil:
            throw refuse("unknown kind \(header.kind)")
        }
    }

    /// Every message of a complete body (a lease answer, a fuzz input); throws on a bad one
    /// or on bytes left after the last.
    package static func messages(_ body: [UInt8], source: String = "-") throws -> [Message] {
        var decoder = WireDecoder(source: source)
        decoder.append(ByteBuffer(bytes: body))
        var messages: [Message] = []
        while let message = try decoder.next() { messages.append(message) }
        guard decoder.buffer.readableBytes == 0 else {
            throw MBDataError(.corruptData, "the body ends inside a message (\(decoder.buffer.readableBytes) bytes left)", source: source)
        }
        return messages
    }
}
