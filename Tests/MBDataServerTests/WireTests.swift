import Foundation
import MBData
import MBDataTraining
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
            #expect([batch.epoch, batch.batch, batch.rank, batch.sampleCount, batch.uncompressedSize] == [3, 70_000, 5, 250, 1 << 20] as [Int])
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

    /// A local batch message (protocol 1.3) carries where a spooled frame lies, as JSON
    /// whose checksum is the header's; a run of them is written as one buffer, one message
    /// after another; the Swift client, which never asks for local delivery, refuses one by name.
    @Test func aLocalBatchNamesItsFramesPlaceAndTheSwiftClientRefusesIt() throws {
        let frames = [5, 6].map {
            FrameDescription(epoch: 2, batch: $0, rank: 1, sampleCount: 64, uncompressedSize: 9000, length: 4000 + $0, checksum: 0x0123_4567_89ab_cdef)
        }
        let locations = frames.map {
            FrameLocation(path: "/spool/set/shard-00000.mbshard", device: 7, inode: 99, offset: 123_456 + UInt64($0.batch), frame: $0)
        }
        let outgoing = try OutgoingBatch.local(locations)
        #expect(outgoing.batches == [5, 6])
        #expect(outgoing.frameBytes == 8011 && outgoing.uncompressedBytes == 18000)
        var message = outgoing.message
        for location in locations {
            let header = try #require(try WireHeader.peek(message))
            #expect(header.kind == WireHeader.Kind.localBatch.rawValue)
            #expect([header.epoch, header.batch, header.rank, header.samples, header.uncompressed] == [2, location.frame.batch, 1, 64, 9000] as [Int])
            let payload = try #require(message.getBytes(at: message.readerIndex + WireHeader.size, length: header.payloadLength))
            #expect(header.checksum == ShardFormat.xxh64(payload))
            let reference = try WireJSON.decode(LocalFrame.self, from: Data(payload))
            #expect(
                reference
                    == LocalFrame(
                        path: location.path, device: 7, inode: 99, offset: location.offset, length: UInt64(location.frame.length),
                        frameChecksum: 0x0123_4567_89ab_cdef))
            #expect(reference.frameChecksum == "0123456789abcdef")
            message.moveReaderIndex(forwardBy: WireHeader.size + header.payloadLength)
        }
        #expect(message.readableBytes == 0)
        let error = #expect(throws: MBDataError.self) { try WireDecoder.messages(Array(outgoing.message.readableBytesView)) }
        #expect(error?.description.contains("a local batch") == true)
    }
}
