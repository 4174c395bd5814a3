import MBData
import MBDataWire
import NIOCore
import Testing

@testable import MBDataClient
@testable import MBDataServer

/// The daemon's messages, read back by the Swift client's decoder: the header layout lives
/// in one place (MBDataWire), so these check that both sides use it the same way.
@Suite struct WireTests {
    /// A producer whose one batch is a fixed frame.
    struct OneBatch: BatchProducer {
        let frame: [UInt8]
        func produce(_ item: PlanItem) throws -> ReadyBatch {
            ReadyBatch(
                epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: 250, uncompressedSize: 1 << 20, frame: frame,
                checksum: ShardFormat.xxh64(frame))
        }
    }

    @Test func messagesSurviveArrivingInAnyChunks() throws {
        let frame = try LZ4Frame.compress((0..<5000).map { UInt8($0 % 251) }, level: 1)
        var stream = try OutgoingBatch.make(PlanItem(epoch: 3, batch: 70_000, rank: 5), from: OneBatch(frame: frame), lease: 0xDEAD_BEEF)
            .message
        var end = WireMessage.end(reason: .complete, sent: 1, allocator: ByteBufferAllocator())
        stream.writeBuffer(&end)
        for chunkSize in [1, 7, 56, 4096, stream.readableBytes] {
            var decoder = WireDecoder(source: "test")
            var messages: [WireDecoder.Message] = []
            var rest = stream
            while let chunk = rest.readSlice(length: min(chunkSize, rest.readableBytes)) {
                decoder.append(chunk)
                while let message = try decoder.next() { messages.append(message) }
                if rest.readableBytes == 0 { break }
            }
            #expect(messages.count == 2)
            guard case .batch(let batch, let lease)? = messages.first else {
                Issue.record("the first message is not a batch")
                continue
            }
            #expect(lease == 0xDEAD_BEEF)
            #expect([batch.epoch, batch.batch, batch.rank, batch.sampleCount, batch.uncompressedSize] == [3, 70_000, 5, 250, 1 << 20])
            #expect(batch.frame == frame)
            #expect(batch.checksum == ShardFormat.xxh64(frame))
            guard case .end(let reason)? = messages.last else {
                Issue.record("the last message is not an end")
                continue
            }
            #expect(reason == .complete)
        }
    }

    @Test func aBadMagicOrKindIsRefused() throws {
        var end = WireMessage.end(reason: .complete, sent: 0, allocator: ByteBufferAllocator())
        var badMagic = end
        badMagic.setInteger(UInt8(ascii: "X"), at: badMagic.readerIndex)
        var decoder = WireDecoder(source: "test")
        decoder.append(badMagic)
        #expect(throws: MBDataError.self) { try decoder.next() }
        end.setInteger(UInt8(9), at: end.readerIndex + 4)
        var other = WireDecoder(source: "test")
        other.append(end)
        let error = #expect(throws: MBDataError.self) { try other.next() }
        #expect(error?.description.contains("unknown kind 9") == true)
    }

    /// Sizes from a header are checked before anything of that size is allocated or waited
    /// for: a length or uncompressed size of 2^63−1, a zero-length batch, a huge JSON payload.
    @Test func headersWhoseSizesDoNotFitAreRefused() throws {
        func header(kind: WireHeader.Kind, payload: Int, uncompressed: Int) -> [UInt8] {
            var buffer = ByteBuffer()
            WireHeader(kind: kind, uncompressed: uncompressed, payloadLength: payload, checksum: 0).write(into: &buffer)
            return Array(buffer.readableBytesView)
        }
        for (kind, payload, uncompressed) in [
            (WireHeader.Kind.batch, Int.max, 10), (.batch, 10, Int.max), (.batch, 0, 10), (.batch, 10, 0),
            (.batch, WireDecoder.maxPayload + 1, 10), (.end, WireDecoder.maxJSONPayload + 1, 0), (.error, Int.max, 0),
        ] {
            let error = #expect(throws: MBDataError.self) { try WireDecoder.messages(header(kind: kind, payload: payload, uncompressed: uncompressed)) }
            #expect(error?.description.contains("bad message") == true)
        }
        var end = WireMessage.end(reason: .complete, sent: 0, allocator: ByteBufferAllocator())
        let whole = Array(end.readableBytesView)
        #expect(try WireDecoder.messages(whole).count == 1)
        #expect(throws: MBDataError.self) { try WireDecoder.messages(Array(whole.dropLast())) }
        end.setInteger(UInt8(ascii: "x"), at: end.writerIndex - 2)
        #expect(throws: MBDataError.self) { try WireDecoder.messages(Array(end.readableBytesView)) }
    }
}
