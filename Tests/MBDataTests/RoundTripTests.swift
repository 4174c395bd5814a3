import Foundation
import Testing

@testable import MBData

/// Every source format: ingest, read back, and get exactly the values and bytes put in.
@Suite struct RoundTripTests {
    static let allTypesSchema = """
        {"name": "all", "key": "id", "fields": [
          {"name": "id", "dtype": "int64"},
          {"name": "u8", "dtype": "uint8", "shape": [2, 3]},
          {"name": "i8", "dtype": "int8", "shape": [4]},
          {"name": "i16", "dtype": "int16", "shape": [2]},
          {"name": "i32", "dtype": "int32", "shape": [null]},
          {"name": "f16", "dtype": "float16", "shape": [2]},
          {"name": "bf16", "dtype": "bfloat16", "shape": [2]},
          {"name": "f32", "dtype": "float32", "shape": [3]},
          {"name": "f64", "dtype": "float64"},
          {"name": "flag", "dtype": "bool"},
          {"name": "mask", "dtype": "bool", "shape": [3]},
          {"name": "blob", "dtype": "bytes"},
          {"name": "text", "dtype": "string"}]}
        """

    /// One generated sample: how it is written as JSON and as CSV, and what must be stored.
    struct Generated {
        var json: String
        var csv: String
        var stored: [SampleValue]
    }

    static func generate(_ i: Int) -> Generated {
        let u8 = (0..<6).map { UInt8(($0 * 40 + i) % 256) }
        let i8 = [Int8(-128), Int8(127), Int8(i % 100), Int8(-(i % 50))]
        let i16 = [Int16(-32768 + i), Int16(32767 - i)]
        let i32 = (0..<(i % 5)).map { Int32($0 * 100_000 - i) }
        let f16: [Float16] = [Float16(Float(i) * 0.5), -65504]
        let bf16: [Float] = [Float(i) * 0.25, Float(bitPattern: 0xFEE2_0000)]
        let f32: [Float] = [Float(i) / 8, -3.25, 1e30]
        let f64 = Double(i) * 1.0e-3
        let flag = i % 2 == 0
        let mask = [true, i % 3 == 0, false]
        let blob = (0..<(i % 7)).map { UInt8(255 - $0 - i % 3) }
        let text = "sample \(i) ✓ \"quoted\", comma\(i % 4 == 0 ? "\nline" : "")"

        func jsonArray<T>(_ values: [T], _ f: (T) -> String = { "\($0)" }) -> String { "[" + values.map(f).joined(separator: ",") + "]" }
        func jsonString(_ s: String) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
        }
        let base64 = Data(blob).base64EncodedString()
        let json =
            "{" + [
                "\"text\": \(jsonString(text))",
                "\"id\": \(i)",
                "\"u8\": [\(jsonArray(Array(u8[0..<3]))), \(jsonArray(Array(u8[3..<6])))]",
                "\"i8\": \(jsonArray(i8))", "\"i16\": \(jsonArray(i16))", "\"i32\": \(jsonArray(i32))",
                "\"f16\": \(jsonArray(f16) { "\(Float($0))" })", "\"bf16\": \(jsonArray(bf16) { "\($0)" })",
                "\"f32\": \(jsonArray(f32))", "\"f64\": \(f64)", "\"flag\": \(flag)", "\"mask\": \(jsonArray(mask))",
                "\"blob\": \"\(base64)\"",
            ].joined(separator: ", ") + "}"

        func cell<T>(_ values: [T], _ f: (T) -> String = { "\($0)" }) -> String { values.map(f).joined(separator: " ") }
        let quotedText = "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        let csv = [
            "\(i)", cell(u8), cell(i8), cell(i16), cell(i32), cell(f16) { "\(Float($0))" }, cell(bf16) { "\($0)" }, cell(f32),
            "\(f64)", flag ? "true" : "0", cell(mask) { $0 ? "1" : "false" }, base64, quotedText,
        ].joined(separator: ",")

        let stored: [SampleValue] = [
            .integer(Int64(i)), .blob(u8), .blob(NPY.littleEndian(i8.map { UInt8(bitPattern: $0) })), .blob(NPY.littleEndian(i16)),
            .blob(NPY.littleEndian(i32)), .blob(NPY.littleEndian(f16.map(\.bitPattern))),
            .blob(NPY.littleEndian(bf16.map { UInt16($0.bitPattern >> 16) })), .blob(NPY.float32(f32)), .real(f64),
            .integer(flag ? 1 : 0), .blob(mask.map { $0 ? 1 : 0 }), .blob(blob), .text(text),
        ]
        return Generated(json: json, csv: csv, stored: stored)
    }

    static let csvHeader = "id,u8,i8,i16,i32,f16,bf16,f32,f64,flag,mask,blob,text"

    @Test func jsonlAndCSVStoreEveryDtypeExactly() async throws {
        let dir = try TemporaryDirectory()
        let parsed = try schema(Self.allTypesSchema)
        let generated = (0..<50).map(Self.generate)
        let jsonl = try dir.write("all.jsonl", generated.map(\.json).joined(separator: "\n") + "\n")
        let csv = try dir.write("all.csv", ([Self.csvHeader] + generated.map(\.csv)).joined(separator: "\r\n"))
        for (name, path) in [("j.mbdb", jsonl), ("c.mbdb", csv)] {
            let dataset = try Dataset(path: dir.path(name), create: true)
            let summary = try await ingest(dataset, [path], schema: parsed)
            #expect(summary.rowsAdded == 50)
            let stored = try await dataset.samples()
            #expect(stored.count == 50)
            for (sample, expected) in zip(stored, generated) {
                for (index, field) in parsed.fields.enumerated() {
                    #expect(sample.values[index] == expected.stored[index], "\(name) sample \(sample.id) field \(field.name)")
                }
            }
            #expect(try await dataset.verify().isValid)
        }
    }

    @Test func stringsKeepEmbeddedNULs() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("nul.jsonl", "{\"s\": \"a\\u0000b\"}\n{\"s\": \"\\u0000\"}\n")
        let dataset = try Dataset(path: dir.path("n.mbdb"), create: true)
        try await ingest(dataset, [path], schema: try schema(#"{"name": "n", "fields": [{"name": "s", "dtype": "string"}]}"#))
        #expect(try await dataset.samples().map(\.values) == [[.text("a\u{0}b")], [.text("\u{0}")]])
    }

    @Test func tabularSampleIsTheSameFromEveryFormat() async throws {
        let dir = try TemporaryDirectory()
        let sources: [(String, [String])] = [
            ("jsonl", [samplePath("formats/tabular.jsonl")]),
            ("csv", [samplePath("formats/tabular.csv")]),
            ("npy", ["id=" + samplePath("formats/ids.npy"), "features=" + samplePath("formats/features.npy"), "label=" + samplePath("formats/labels.npy")]),
            ("npz", [samplePath("formats/tabular.npz")]),
            ("npz-deflated", [samplePath("formats/tabular_compressed.npz")]),
        ]
        var results: [[StoredSample]] = []
        for (name, paths) in sources {
            let dataset = try Dataset(path: dir.path("\(name).mbdb"), create: true)
            let summary = try await ingest(dataset, paths, schema: try Schema(contentsOf: samplePath("formats/tabular.schema.json")))
            #expect(summary.rowsAdded == 10, "\(name)")
            results.append(try await dataset.samples())
        }
        for (index, result) in results.enumerated().dropFirst() {
            #expect(result.map(\.values) == results[0].map(\.values), "\(sources[index].0) differs from jsonl")
        }
        // The features column holds exactly the bytes of the .npy data section.
        let npy = try [UInt8](Data(contentsOf: URL(fileURLWithPath: samplePath("formats/features.npy"))))
        let dataBytes = Array(npy.suffix(10 * 4 * 4))
        let stored = results[0].flatMap { sample -> [UInt8] in
            guard case .blob(let bytes) = sample.values[1] else { return [] }
            return bytes
        }
        #expect(stored == dataBytes)
        #expect(results[0].first?.values[0] == .integer(100))
    }

    @Test func captionsFromJSONLAndCSVAgree() async throws {
        let dir = try TemporaryDirectory()
        let captionsSchema = try Schema(contentsOf: samplePath("formats/captions.schema.json"))
        var results: [[[SampleValue]]] = []
        for file in ["captions.jsonl", "captions.csv"] {
            let dataset = try Dataset(path: dir.path(file + ".mbdb"), create: true)
            try await ingest(dataset, [samplePath("formats/" + file)], schema: captionsSchema)
            results.append(try await dataset.samples().map(\.values))
        }
        #expect(results[0].count == 5)
        #expect(results[0] == results[1])
    }

    @Test func npyConvertsOnlyWithoutLoss() async throws {
        let dir = try TemporaryDirectory()
        let target = try schema(#"{"name": "c", "fields": [{"name": "x", "dtype": "float32", "shape": [2]}, {"name": "y", "dtype": "int64"}]}"#)
        // float64 values exact in float32, uint8 labels into int64, big-endian input.
        let x = try dir.write("x.npy", bytes: NPY.file(descr: "<f8", shape: [3, 2], data: NPY.float64([0.5, -2, 1e10, 0.25, 3, 4])))
        let y = try dir.write("y.npy", bytes: NPY.file(descr: ">u2", shape: [3], data: [0, 1, 1, 0, 0xFF, 0xFF]))
        let dataset = try Dataset(path: dir.path("c.mbdb"), create: true)
        try await ingest(dataset, ["x=" + x, "y=" + y], schema: target)
        let stored = try await dataset.samples()
        #expect(stored.map(\.values[1]) == [.integer(1), .integer(256), .integer(65535)])
        #expect(stored[0].values[0] == .blob(NPY.float32([0.5, -2])))

        let lossy = try dir.write("lossy.npy", bytes: NPY.file(descr: "<f8", shape: [3, 2], data: NPY.float64([0.1, 0, 0, 0, 0, 0])))
        let error = await ingestError(try Dataset(path: dir.path("l.mbdb"), create: true), ["x=" + lossy, "y=" + y], schema: target)
        #expect(error?.matches(.schemaMismatch, "lossy.npy", "record 0", "field 'x'", "without loss") == true, "\(String(describing: error))")
    }

    @Test func npyStringArraysFillTextAndBytesFields() async throws {
        let dir = try TemporaryDirectory()
        let target = try schema(#"{"name": "s", "fields": [{"name": "name", "dtype": "string"}, {"name": "raw", "dtype": "bytes"}]}"#)
        let names = try dir.write("n.npy", bytes: NPY.file(descr: "<U3", shape: [2], data: NPY.littleEndian([UInt32(97), 0xE9, 0, 122, 122, 122])))
        let raw = try dir.write("r.npy", bytes: NPY.file(descr: "|S2", shape: [2], data: [1, 0, 2, 3]))
        let dataset = try Dataset(path: dir.path("s.mbdb"), create: true)
        try await ingest(dataset, ["name=" + names, "raw=" + raw], schema: target)
        let stored = try await dataset.samples().map(\.values)
        #expect(stored == [[.text("aé"), .blob([1])], [.text("zzz"), .blob([2, 3])]])
    }

    @Test func cifarTinyNPZ() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("c.mbdb"), create: true)
        let summary = try await ingest(dataset, [samplePath("formats/cifar_tiny.npz")], schema: try Schema(contentsOf: samplePath("formats/cifar.schema.json")))
        #expect(summary.rowsAdded == 16)
        let stored = try await dataset.samples()
        for sample in stored {
            guard case .blob(let image) = sample.values[0] else { Issue.record("image is not a blob"); continue }
            #expect(image.count == 3072)
        }
    }

    @Test func imageFolderStoresFilesLabelsAndClasses() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("i.mbdb"), create: true)
        let root = samplePath("formats/imagefolder")
        let summary = try await ingest(dataset, [root], schema: try Schema(contentsOf: samplePath("formats/imagefolder.schema.json")))
        #expect(summary.rowsAdded == 6)
        let parsed = try #require(try await dataset.schema())
        let stored = try await dataset.samples()
        let pathIndex = try #require(parsed.index(of: "path"))
        let imageIndex = try #require(parsed.index(of: "image"))
        let labelIndex = try #require(parsed.index(of: "label"))
        for sample in stored {
            guard case .text(let relative) = sample.values[pathIndex] else { Issue.record("no path"); continue }
            let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/" + relative)))
            #expect(sample.values[imageIndex] == .blob(file))
            #expect(sample.values[labelIndex] == .integer(relative.hasPrefix("cat/") ? 0 : 1))
        }
        let info = try await dataset.info()
        #expect(info.classes == ["cat", "dog"])
    }

    @Test(arguments: [(2, "tokens.bin"), (4, "tokens32.bin")])
    func tokenBinariesAreCutIntoWindows(width: Int, file: String) async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("t.mbdb"), create: true)
        let path = samplePath("formats/" + file)
        let summary = try await ingest(
            dataset, [path], schema: try Schema(contentsOf: samplePath("formats/tokens.schema.json")), sequenceLength: 64,
            tokenByteWidth: width)
        #expect(summary.rowsAdded == 1000 / 64)
        #expect(summary.notes.contains { $0.contains("tail of \(1000 % 64) tokens") })
        let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let tokens: [Int32] = stride(from: 0, to: raw.count, by: width).map { offset in
            (0..<width).reduce(Int32(0)) { $0 | Int32(raw[offset + $1]) << (8 * $1) }
        }
        let stored = try await dataset.samples()
        for (window, sample) in stored.enumerated() {
            #expect(sample.values[0] == .blob(NPY.littleEndian(Array(tokens[(window * 64)..<((window + 1) * 64)]))))
        }
    }

    @Test func digitsFromJSONLAndNPYAreIdentical() async throws {
        let dir = try TemporaryDirectory()
        let digits = try Schema(contentsOf: samplePath("digits/digits.schema.json"))
        let a = try Dataset(path: dir.path("a.mbdb"), create: true)
        let b = try Dataset(path: dir.path("b.mbdb"), create: true)
        try await ingest(a, [samplePath("digits/digits.jsonl")], schema: digits)
        try await ingest(b, ["id=" + samplePath("digits/ids.npy"), "image=" + samplePath("digits/images.npy"), "label=" + samplePath("digits/labels.npy")], schema: digits)
        let fromJSON = try await a.samples().map(\.values)
        #expect(fromJSON.count == 1797)
        #expect(fromJSON == (try await b.samples().map(\.values)))
    }
}
