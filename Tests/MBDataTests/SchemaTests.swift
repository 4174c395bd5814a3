import Foundation
import Testing

@testable import MBData

@Suite struct SchemaTests {
    @Test func parsesEveryExampleSchema() throws {
        let folder = packageRoot.appendingPathComponent("schemas/examples")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".schema.json") }
        #expect(files.count >= 4)
        for file in files {
            let parsed = try Schema(contentsOf: folder.appendingPathComponent(file).path)
            #expect(!parsed.fields.isEmpty)
        }
    }

    @Test func readsShapesKeysAndDtypes() throws {
        let parsed = try schema(
            #"{"name": "t", "key": "id", "fields": [{"name": "id", "dtype": "int64"}, {"name": "tokens", "dtype": "int32", "shape": [null]}, {"name": "image", "dtype": "uint8", "shape": [3, 32, 32]}, {"name": "caption", "dtype": "string", "shape": []}]}"#)
        #expect(parsed.key == "id")
        #expect(parsed.fields.map(\.dtype) == [.int64, .int32, .uint8, .string])
        #expect(parsed.fields[1].shape == [nil])
        #expect(parsed.fields[2].fixedByteCount == 3072)
        #expect(parsed.fields[3].isScalar)
        #expect(parsed.fields.map(\.sqlType) == ["INTEGER", "BLOB", "BLOB", "TEXT"])
    }

    @Test(arguments: [
        (#"{"name": "x", "fields": []}"#, "non-empty array \"fields\""),
        (#"{"fields": [{"name": "a", "dtype": "int64"}]}"#, "non-empty string \"name\""),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "int128"}]}"#, "unknown dtype \"int128\""),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "uint8", "shape": [0]}]}"#, "not a positive integer"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "uint8", "shape": [2.5]}]}"#, "not a positive integer"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "uint8", "shape": "3"}]}"#, "must be an array"),
        (#"{"name": "x", "fields": [{"name": "_a", "dtype": "uint8"}]}"#, "leading underscore is reserved"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "uint8"}, {"name": "A", "dtype": "uint8"}]}"#, "duplicate field name"),
        (#"{"name": "x", "key": "b", "fields": [{"name": "a", "dtype": "uint8"}]}"#, "key \"b\" is not one of the fields"),
        (#"{"name": "x", "key": "a", "fields": [{"name": "a", "dtype": "float32"}]}"#, "a key must be a scalar integer"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "bytes", "shape": [4]}]}"#, "hold one value per sample"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "int8", "shape": [null, null]}]}"#, "at most one dimension may be variable"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "int8", "shape": [2147483647, 2147483647, 2147483647]}]}"#, "more than 1024 MiB per value"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "float64", "shape": [null, 65536, 4096]}]}"#, "more than 1024 MiB per value"),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "int8", "size": 3}]}"#, "unknown property \"size\""),
        (#"{"name": "x", "fields": [{"name": "a", "dtype": "int8"}"#, "not valid JSON"),
        (#"[1, 2]"#, "must be a JSON object"),
    ])
    func rejectsInvalidSchemas(document: String, expected: String) throws {
        let error = #expect(throws: MBDataError.self) { try schema(document) }
        #expect(error?.code == .invalidSchema)
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "") should mention \(expected)")
    }

    @Test func schemaFileErrorsNameTheFile() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("bad.schema.json", #"{"name": "x", "fields": [{"name": "a"}]}"#)
        let error = #expect(throws: MBDataError.self) { try Schema(contentsOf: path) }
        #expect(error?.description.contains("bad.schema.json") == true)
        #expect(error?.description.contains("dtype") == true)
        let missing = #expect(throws: MBDataError.self) { try Schema(contentsOf: dir.path("none.json")) }
        #expect(missing?.code == .unreadableSource)
    }

    @Test func canonicalJSONRoundTrips() throws {
        let original = try schema(tabularSchemaJSON)
        let again = try Schema(json: Data(original.canonicalJSON().utf8))
        #expect(again == original)
    }

    @Test func bfloat16RoundsToNearestEven() {
        #expect(BFloat16.decode(BFloat16.encode(1.0)) == 1.0)
        #expect(BFloat16.decode(BFloat16.encode(3.140625)) == 3.140625)
        #expect(BFloat16.encode(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
        #expect(BFloat16.encode(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(BFloat16.decode(BFloat16.encode(.nan)).isNaN)
    }

    @Test func xxh64MatchesReferenceValues() {
        var empty = XXH64()
        empty.update([])
        #expect(empty.finalize() == 0xEF46_DB37_51D8_E999)
        var abc = XXH64()
        abc.update(Array("abc".utf8))
        #expect(abc.finalize() == 0x44BC_2CF5_AD77_0999)
        let text = Array("The quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog.".utf8)
        #expect(text.count == 96 && ShardFormat.xxh64(text) == 0x581D_6C19_BA1B_00F2, "three whole stripes, no tail")
        // Streaming in pieces equals one call.
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var whole = XXH64()
        whole.update(long)
        var pieces = XXH64()
        for chunk in stride(from: 0, to: long.count, by: 37) { pieces.update(Array(long[chunk..<min(chunk + 37, long.count)])) }
        #expect(whole.finalize() == pieces.finalize())
    }

    /// Inputs past 32 bytes go through the four-lane stripe loop and the lane merge, then
    /// the 8-, 4- and 1-byte tail steps; values from Python's `xxhash` package
    /// (`xxhash.xxh64(data).hexdigest()`, xxHash 0.8).
    @Test(arguments: [
        (33, 0x791C_BE85_7E7F_A007 as UInt64),  // one stripe, one byte over
        (71, 0x4E6A_8949_1E99_5E23),  // two stripes, then 4 + 3 bytes
        (1000, 0xB128_0F64_2812_6532),  // 31 stripes, then 8 bytes
    ])
    func xxh64MatchesTheReferenceOnLongInputs(length: Int, expected: UInt64) {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hash = XXH64()
        hash.update(bytes)
        #expect(hash.finalize() == expected)
        var pieces = XXH64()
        for start in stride(from: 0, to: length, by: 13) { pieces.update(Array(bytes[start..<min(start + 13, length)])) }
        #expect(pieces.finalize() == expected, "streamed in 13-byte pieces")
        #expect(ShardFormat.xxh64(bytes) == expected)
    }
}
