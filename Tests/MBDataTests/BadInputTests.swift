import Foundation
import Testing

@testable import MBData

/// Each class of bad input gives its own error naming the source, the record, the field and
/// what was expected — and never leaves a half-written row.
@Suite struct BadInputTests {
    static func good(_ id: Int) -> String { "{\"id\": \(id), \"features\": [1, 2.5, -3, 0.125], \"label\": \(id % 3)}" }

    /// Writes a JSONL whose line `badLine` (1-based) is replaced, ingests it and returns the error.
    func jsonlError(_ bad: String, at badLine: Int = 2, lines: Int = 3, options: IngestOptions = IngestOptions()) async throws -> MBDataError? {
        let dir = try TemporaryDirectory()
        let text = (1...lines).map { $0 == badLine ? bad : Self.good($0) }.joined(separator: "\n")
        let path = try dir.write("data.jsonl", text)
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let error = await ingestError(dataset, [path], schema: try schema(tabularSchemaJSON), options: options)
        #expect(try await dataset.samples().count == 0, "nothing of a failed first chunk is committed")
        return error
    }

    @Test(arguments: [
        (#"{"id": 2, "features": [1, 2, 3, 4], "label": }"#, MBDataError.Code.malformedRecord, ["line 2", "invalid JSON at column 46", "expected a value"]),
        (#"{"id": 2, "features": [1, 2, 3, 4], "label": 1"#, .malformedRecord, ["line 2", "expected ',' or '}'"]),
        (#"["id", 2]"#, .malformedRecord, ["line 2", "expected a JSON object"]),
        (#"{"id": 2, "features": [1, 2, 3], "label": 1}"#, .schemaMismatch, ["line 2", "field 'features'", "expected 4 elements", "got 3"]),
        (#"{"id": 2, "features": [[1, 2], [3, 4]], "label": 1}"#, .schemaMismatch, ["field 'features'", "expected float32"]),
        (#"{"id": 2, "features": 7, "label": 1}"#, .schemaMismatch, ["field 'features'", "as nested arrays, got a number"]),
        (#"{"id": 2, "features": [1, 2, 3, 4], "label": "abc"}"#, .schemaMismatch, ["field 'label'", "expected int64, got a string"]),
        (#"{"id": 2, "features": [1, 2, 3, 4], "label": 1.5}"#, .schemaMismatch, ["field 'label'", "expected int64", "got 1.5"]),
        (#"{"id": 2, "features": [1, 2, 3, 4], "label": 99999999999999999999}"#, .schemaMismatch, ["field 'label'", "expected int64"]),
        (#"{"id": 2, "features": [1, 2, 3e39, 4], "label": 1}"#, .schemaMismatch, ["field 'features'", "float32 within"]),
        (#"{"id": 2, "features": [1, 2, 3, 4]}"#, .schemaMismatch, ["line 2", "field 'label'", "missing field"]),
        (#"{"id": 2, "features": [1, 2, 3, 4], "label": 1, "extra": 0}"#, .schemaMismatch, ["line 2", "field 'extra'", "unknown field"]),
        (#"{"id": 2, "id": 3, "features": [1, 2, 3, 4], "label": 1}"#, .malformedRecord, ["field 'id'", "appears twice"]),
        (#"{"id": null, "features": [1, 2, 3, 4], "label": 1}"#, .schemaMismatch, ["field 'id'", "got null"]),
    ])
    func jsonlRecordErrors(line: String, code: MBDataError.Code, parts: [String]) async throws {
        let error = try await jsonlError(line)
        #expect(error?.code == code, "\(String(describing: error))")
        for part in parts + ["data.jsonl"] {
            #expect(error?.description.contains(part) == true, "\(error?.description ?? "nil") should contain \(part)")
        }
    }

    @Test func integerOverflowNamesTheRange() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("u8.jsonl", "{\"x\": [1, 300]}\n")
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let error = await ingestError(dataset, [path], schema: try schema(#"{"name": "u", "fields": [{"name": "x", "dtype": "uint8", "shape": [2]}]}"#))
        #expect(error?.matches(.schemaMismatch, "u8.jsonl:line 1", "field 'x'", "expected uint8 in 0...255, got 300") == true, "\(String(describing: error))")
    }

    @Test func nonUTF8TextIsRefused() async throws {
        let dir = try TemporaryDirectory()
        let textSchema = try schema(#"{"name": "t", "fields": [{"name": "caption", "dtype": "string"}]}"#)
        let jsonl = try dir.write("bad.jsonl", bytes: Array("{\"caption\": \"ok\"}\n{\"caption\": \"b".utf8) + [0xFF, 0xFE] + Array("d\"}\n".utf8))
        let error = await ingestError(try Dataset(path: dir.path("a.mbdb"), create: true), [jsonl], schema: textSchema)
        #expect(error?.matches(.malformedRecord, "bad.jsonl:line 2", "field 'caption'", "not valid UTF-8") == true, "\(String(describing: error))")
        let csv = try dir.write("bad.csv", bytes: Array("caption\nok\nb".utf8) + [0xC3] + Array("\n".utf8))
        let csvError = await ingestError(try Dataset(path: dir.path("b.mbdb"), create: true), [csv], schema: textSchema)
        #expect(csvError?.matches(.malformedRecord, "bad.csv:line 3", "field 'caption'", "not valid UTF-8") == true, "\(String(describing: csvError))")
    }

    @Test func emptySourcesAreRefused() async throws {
        let dir = try TemporaryDirectory()
        let tabular = try schema(tabularSchemaJSON)
        for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n\n  \n"), ("empty.csv", ""), ("header-only.csv", "id,features,label\n")] {
            let path = try dir.write(name, text)
            let error = await ingestError(try Dataset(path: dir.path(name + ".mbdb"), create: true), [path], schema: tabular)
            #expect(error?.code == .emptySource, "\(name): \(String(describing: error))")
            #expect(error?.description.contains(name) == true)
        }
    }

    @Test func unreadablePathsAreRefused() async throws {
        let dir = try TemporaryDirectory()
        let tabular = try schema(tabularSchemaJSON)
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let missing = await ingestError(dataset, [dir.path("nope.jsonl")], schema: tabular)
        #expect(missing?.matches(.unreadableSource, "nope.jsonl", "no such file") == true, "\(String(describing: missing))")
        try FileManager.default.createDirectory(atPath: dir.path("folder.jsonl"), withIntermediateDirectories: true)
        let directory = await ingestError(dataset, [dir.path("folder.jsonl")], schema: tabular, format: .jsonl)
        #expect(directory?.matches(.unreadableSource, "folder.jsonl", "is a directory") == true, "\(String(describing: directory))")
        let unknown = await ingestError(dataset, [try dir.write("data.parquet", "x")], schema: tabular)
        #expect(unknown?.matches(.invalidArgument, "data.parquet", "name it (jsonl|") == true, "\(String(describing: unknown))")
        #expect(unknown?.parameter == "SourceSpec.format", "the CLI names its --format flag from this")
    }

    @Test func csvErrors() async throws {
        let dir = try TemporaryDirectory()
        let tabular = try schema(tabularSchemaJSON)
        let cases: [(String, MBDataError.Code, [String])] = [
            ("id,features,label\n1,1 2 3 4,0\n2,1 2 3,0\n", .schemaMismatch, ["line 3", "field 'features'", "expected 4 space-separated values", "got 3"]),
            ("id,features,label\n1,1 2 3 4,0\n2,1 2 3 4\n", .malformedRecord, ["line 3", "expected 3 cells"]),
            ("id,features,label\n1,1 2 x 4,0\n", .schemaMismatch, ["line 2", "field 'features'", "got \"x\""]),
            ("id,features,label\n1,1 2 3 4,\"0\n", .malformedRecord, ["line 2", "unterminated quoted cell"]),
            ("id,features,label,color\n", .schemaMismatch, ["line 1", "unknown field \"color\""]),
            ("id,features\n", .schemaMismatch, ["line 1", "field 'label'", "lacks a column"]),
            ("id,features,label\n1,1 2 3 4,\"0\"x\n", .malformedRecord, ["line 2", "after a closing quote"]),
        ]
        for (index, (text, code, parts)) in cases.enumerated() {
            let path = try dir.write("case\(index).csv", text)
            let error = await ingestError(try Dataset(path: dir.path("\(index).mbdb"), create: true), [path], schema: tabular)
            #expect(error?.code == code, "case \(index): \(String(describing: error))")
            for part in parts + ["case\(index).csv"] {
                #expect(error?.description.contains(part) == true, "case \(index): \(error?.description ?? "nil") should contain \(part)")
            }
        }
    }

    @Test func npyErrors() async throws {
        let dir = try TemporaryDirectory()
        let target = try schema(#"{"name": "n", "fields": [{"name": "x", "dtype": "float32", "shape": [2]}, {"name": "y", "dtype": "int64"}]}"#)
        let y = try dir.write("y.npy", bytes: NPY.file(descr: "<i8", shape: [3], data: NPY.littleEndian([Int64(1), 2, 3])))
        let goodX = NPY.file(descr: "<f4", shape: [3, 2], data: NPY.float32([1, 2, 3, 4, 5, 6]))
        let cases: [(String, [UInt8], MBDataError.Code, [String])] = [
            ("truncated", Array(goodX.dropLast(5)), .malformedRecord, ["truncated", "24 data bytes", "holds 19"]),
            ("badmagic", [0x93] + Array("NUMPX".utf8) + Array(goodX.dropFirst(6)), .malformedRecord, ["not an NPY file"]),
            ("shape", NPY.file(descr: "<f4", shape: [3, 3], data: NPY.float32(Array(repeating: 1, count: 9))), .schemaMismatch, ["field 'x'", "expected shape (N, 2), got (3, 3)"]),
            ("count", NPY.file(descr: "<f4", shape: [2, 2], data: NPY.float32([1, 2, 3, 4])), .schemaMismatch, ["disagree on the sample count", "has 2", "has 3"]),
            ("dtype", NPY.file(descr: "<c8", shape: [3, 2], data: Array(repeating: 0, count: 48)), .schemaMismatch, ["'<c8' is not supported"]),
            ("object", NPY.file(descr: "|O", shape: [3, 2], data: []), .schemaMismatch, ["'|O' is not supported"]),
            ("fortran", NPY.file(descr: "<f4", shape: [3, 2, 1], data: NPY.float32([1, 2, 3, 4, 5, 6]), fortran: true), .schemaMismatch, ["Fortran-ordered"]),
            ("header", Array(goodX.prefix(9)), .malformedRecord, ["truncated NPY header"]),
        ]
        for (name, bytes, code, parts) in cases {
            let x = try dir.write("\(name).npy", bytes: bytes)
            let error = await ingestError(try Dataset(path: dir.path("\(name).mbdb"), create: true), ["x=" + x, "y=" + y], schema: target)
            #expect(error?.code == code, "\(name): \(String(describing: error))")
            for part in parts {
                #expect(error?.description.contains(part) == true, "\(name): \(error?.description ?? "nil") should contain \(part)")
            }
            #expect(error?.description.contains(".npy") == true, "\(name) names the file")
        }
        let unknownField = await ingestError(try Dataset(path: dir.path("u.mbdb"), create: true), ["z=" + y], schema: target)
        #expect(unknownField?.matches(.schemaMismatch, "field 'z'", "unknown field") == true)
        let missing = await ingestError(try Dataset(path: dir.path("m.mbdb"), create: true), ["y=" + y], schema: target)
        #expect(missing?.matches(.schemaMismatch, "field 'x'", "no array for the field") == true)
    }

    @Test func npzNamesTheMember() async throws {
        let dir = try TemporaryDirectory()
        let wrong = try schema(#"{"name": "t", "key": "id", "fields": [{"name": "id", "dtype": "int64"}, {"name": "features", "dtype": "float32", "shape": [5]}, {"name": "label", "dtype": "int64"}]}"#)
        let error = await ingestError(try Dataset(path: dir.path("z.mbdb"), create: true), [samplePath("formats/tabular_compressed.npz")], schema: wrong)
        #expect(error?.matches(.schemaMismatch, "tabular_compressed.npz:features.npy", "expected shape (N, 5), got (10, 4)") == true, "\(String(describing: error))")
        let notZip = await ingestError(try Dataset(path: dir.path("y.mbdb"), create: true), [try dir.write("fake.npz", "not a zip at all")], schema: wrong)
        #expect(notZip?.matches(.malformedRecord, "fake.npz", "not a zip archive") == true)
    }

    @Test func tokenFilesMustHoldWholeTokens() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("odd.bin", bytes: [1, 0, 2, 0, 3])
        let dataset = try Dataset(path: dir.path("t.mbdb"), create: true)
        do {
            try await ingest(dataset, [path], schema: try Schema(contentsOf: samplePath("formats/tokens.schema.json")), sequenceLength: 2)
            Issue.record("expected an error")
        } catch let error as MBDataError {
            #expect(error.matches(.malformedRecord, "odd.bin", "5 bytes is not a whole number of 2-byte tokens"))
        }
    }

    @Test func aDifferentSchemaForAnExistingDatasetIsRefused() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [samplePath("formats/tabular.jsonl")], schema: try schema(tabularSchemaJSON))
        let other = try schema(#"{"name": "tabular", "fields": [{"name": "id", "dtype": "int32"}]}"#)
        let error = await ingestError(dataset, [samplePath("formats/tabular.jsonl")], schema: other, options: { var o = IngestOptions(); o.force = true; return o }())
        #expect(error?.matches(.schemaMismatch, "differs from the one the dataset was created with") == true)
    }

    @Test func nonDatasetFilesAreRefusedUntouched() async throws {
        let dir = try TemporaryDirectory()
        let text = try dir.write("notes.txt", "these are not the samples you are looking for\n")
        let before = try Data(contentsOf: URL(fileURLWithPath: text))
        #expect(throws: MBDataError.self) { try Dataset(path: text) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: text)) == before)
        let missing = #expect(throws: MBDataError.self) { try Dataset(path: dir.path("none.mbdb")) }
        #expect(missing?.code == .invalidDataset)
        #expect(!FileManager.default.fileExists(atPath: dir.path("none.mbdb")))
    }
}
