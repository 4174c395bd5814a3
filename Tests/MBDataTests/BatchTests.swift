import Foundation
import Testing

@testable import MBData

@Suite struct BatchTests {
    static let mixed = """
        {"name": "m", "fields": [
          {"name": "image", "dtype": "uint8", "shape": [2, 2]},
          {"name": "label", "dtype": "int64"},
          {"name": "score", "dtype": "float32"},
          {"name": "tokens", "dtype": "int32", "shape": [null]},
          {"name": "caption", "dtype": "string"}]}
        """

    func rows() -> [BatchCollator.Row] {
        [
            (11, [.blob([1, 2, 3, 4]), .integer(7), .real(0.5), .blob(NPY.littleEndian([Int32(5), 6, 7])), .text("héllo")]),
            nil,
            (13, [.blob([9, 9, 9, 9]), .integer(-1), .real(2), .blob([]), .text("")]),
        ]
    }

    @Test func collatesFixedVariableAndPaddingRows() throws {
        let collator = try BatchCollator(schema: try schema(Self.mixed), flagsValidity: true)
        let buffer = collator.collate(rows(), metadata: ["epoch": "3"])
        let reader = try SafetensorsReader(buffer)
        #expect(reader.metadata["epoch"] == "3")
        let headerLength = (0..<8).reduce(0) { $0 | Int(buffer[$1]) << (8 * $1) }
        #expect(headerLength % 8 == 0, "header padded to 8 bytes")
        func bytes(_ name: String) -> [UInt8] { Array(buffer[reader.tensors[name]!.range]) }
        #expect(reader.tensors["image"]?.shape == [3, 2, 2])
        #expect(reader.tensors["image"]?.dtype == "U8")
        #expect(bytes("image") == [1, 2, 3, 4, 0, 0, 0, 0, 9, 9, 9, 9])
        #expect(try reader.int64Values("label", in: buffer) == [7, 0, -1])
        #expect(bytes("score") == NPY.float32([0.5, 0, 2]))
        #expect(reader.tensors["tokens"]?.shape == [3])
        #expect(bytes("tokens") == NPY.littleEndian([Int32(5), 6, 7]))
        #expect(try reader.int64Values("tokens.offsets", in: buffer) == [0, 3, 3, 3])
        #expect(bytes("caption") == Array("héllo".utf8))
        #expect(try reader.int64Values("caption.offsets", in: buffer) == [0, 6, 6, 6])
        #expect(try reader.int64Values("_id", in: buffer) == [11, -1, 13])
        #expect(bytes("_valid") == [1, 0, 1])
        // Tensors are contiguous and cover the data section exactly, as safetensors requires.
        let ranges = reader.tensors.values.map(\.range).sorted { $0.lowerBound < $1.lowerBound }
        #expect(ranges.first?.lowerBound == 8 + headerLength)
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(ranges.last?.upperBound == buffer.count)
    }

    @Test func padsVariableFieldsToAFixedLength() throws {
        let collator = try BatchCollator(schema: try schema(Self.mixed), padLengths: ["tokens": 2])
        let buffer = collator.collate(rows())
        let reader = try SafetensorsReader(buffer)
        #expect(reader.tensors["tokens"]?.shape == [3, 2])
        #expect(Array(buffer[reader.tensors["tokens"]!.range]) == NPY.littleEndian([Int32(5), 6, 0, 0, 0, 0]))
        #expect(try reader.int64Values("tokens.lengths", in: buffer) == [2, 0, 0])
        #expect(reader.tensors["_valid"] == nil)
        #expect(throws: MBDataError.self) { try BatchCollator(schema: try schema(Self.mixed), padLengths: ["image": 2]) }
    }

    @Test func theHeaderIsSafetensorsJSONPaddedToEightBytesWithItsMetadataEscaped() throws {
        let plain = SafetensorsWriter.header(
            metadata: ["epoch": "3", "batch": "0"], tensors: [("x", "I32", [2, 3], 24), ("_id", "I64", [2], 16)])
        let expected = #"{"__metadata__":{"batch":"0","epoch":"3"},"x":{"dtype":"I32","shape":[2,3],"data_offsets":[0,24]},"_id":{"dtype":"I64","shape":[2],"data_offsets":[24,40]}}"#
        let length = (0..<8).reduce(0) { $0 | Int(plain[$1]) << (8 * $1) }
        #expect(length == plain.count - 8 && length % 8 == 0)
        #expect(String(decoding: plain[8...], as: UTF8.self) == expected + String(repeating: " ", count: length - expected.utf8.count))
        #expect(SafetensorsWriter.header(metadata: [:], tensors: []) == [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))

        let awkward = "[\"web\",\"c\\d\"]\u{01}\n\té"
        let escaped = SafetensorsWriter.header(metadata: ["sources": awkward], tensors: [("q\"t", "U8", [], 0)])
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(escaped[8...])) as? [String: Any])
        #expect((parsed["__metadata__"] as? [String: String])?["sources"] == awkward)
        #expect(parsed["q\"t"] != nil)
        #expect(String(decoding: escaped, as: UTF8.self).contains(#"\u0001\u000a\u0009"#))
    }

    @Test func lz4FramesRoundTripAndRefuseDamage() throws {
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 251 &* ($0 / 1000)) }
        let frame = try LZ4Frame.compress(payload)
        #expect(frame.count < payload.count)
        #expect(Array(frame.prefix(4)) == [0x04, 0x22, 0x4D, 0x18], "standard LZ4 frame magic")
        #expect(try LZ4Frame.decompress(frame) == payload)
        #expect(try LZ4Frame.decompress(try LZ4Frame.compress(payload, level: 9)) == payload)

        var flipped = frame
        flipped[frame.count / 2] ^= 0x10
        #expect(throws: MBDataError.self) { try LZ4Frame.decompress(flipped) }
        #expect(throws: MBDataError.self) { try LZ4Frame.decompress(Array(frame.dropLast(10))) }
        #expect(throws: MBDataError.self) { try LZ4Frame.decompress(Array("not a frame".utf8)) }
        #expect(throws: MBDataError.self) { try LZ4Frame.decompress(frame + [0]) }
        let limited = #expect(throws: MBDataError.self) { try LZ4Frame.decompress(frame, limit: 1000) }
        #expect(limited?.description.contains("above the limit") == true)
    }
}
