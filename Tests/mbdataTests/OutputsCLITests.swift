import Foundation
import MBData
import MBDataTestSupport
import Testing

/// `mbdata outputs create|list|drop|export`, and outputs in `inspect` and `verify`, through
/// the built binary; rows are put into output tables with plain sqlite3 as the spec encodes them.
@Suite("CLI outputs")
struct OutputsCLITests {
    static let predsSchema = CLI.sample("digits/preds.schema.json")

    /// A fresh digits dataset (1,797 samples, `_id` 1…1797) in `dir`.
    static func digits(in dir: TemporaryDirectory) async throws -> URL {
        let db = dir.file("digits.mbdb")
        let ingest = try await CLI.mbdata(
            ["ingest", db.path, "--schema", CLI.sample("digits/digits.schema.json").path, CLI.sample("digits/digits.jsonl").path], in: dir)
        guard ingest.status == 0 else { throw HarnessError("ingest: \(ingest)") }
        return db
    }

    /// A digits dataset with output `preds` holding `rows` (SQL `VALUES` tuples: `_id`, `pred`, `prob`).
    static func preds(rows: String, in dir: TemporaryDirectory) async throws -> URL {
        let db = try await digits(in: dir)
        let create = try await CLI.mbdata(["outputs", "create", db.path, "--name", "preds", "--schema", predsSchema.path], in: dir)
        guard create.status == 0 else { throw HarnessError("outputs create: \(create)") }
        _ = try await CLI.sqlite(db, "insert into outputs_preds values " + rows, in: dir)
        return db
    }

    /// The little-endian bytes of `values` as an SQL blob literal.
    static func blob<T: FixedWidthInteger>(_ values: [T]) -> String {
        let bytes = values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        return "X'" + bytes.map { String(format: "%02X", $0) }.joined() + "'"
    }

    @Test("create, list (text and JSON), inspect, create again, drop, drop again")
    func createListDrop() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.digits(in: dir)

        let create = try await CLI.mbdata(["outputs", "create", db.path, "--name", "preds", "--schema", Self.predsSchema.path], in: dir)
        #expect(create.status == 0, "create: \(create)")

        let list = try await CLI.mbdata(["outputs", "list", db.path], in: dir)
        #expect(list.status == 0, "list: \(list)")
        for text in ["preds", "0 rows", "pred", "int64", "prob", "float32 [10]"] {
            #expect(list.stdout.contains(text), "list should show \(text): \(list.stdout)")
        }
        let listJSON = try await CLI.mbdata(["outputs", "list", "--json", db.path], in: dir)
        let outputs = try #require(try JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [[String: Any]], "\(listJSON)")
        #expect(outputs.count == 1)
        #expect(outputs.first?["name"] as? String == "preds")
        #expect(outputs.first?["rows"] as? Int == 0)
        #expect((outputs.first?["fields"] as? [[String: Any]])?.map { $0["name"] as? String } == ["pred", "prob"])

        let inspect = try await CLI.mbdata(["inspect", db.path], in: dir)
        #expect(inspect.status == 0 && inspect.stdout.contains("outputs  1") && inspect.stdout.contains("preds"), "\(inspect)")
        let inspectJSON = try await CLI.mbdata(["inspect", "--json", db.path], in: dir)
        let info = try CLI.jsonObject(inspectJSON.stdout)
        #expect(info["sampleCount"] as? Int == 1797, "inspect --json keeps the dataset's keys: \(inspectJSON.stdout)")
        #expect((info["outputs"] as? [[String: Any]])?.first?["name"] as? String == "preds", "\(inspectJSON.stdout)")

        let again = try await CLI.mbdata(["outputs", "create", db.path, "--name", "preds", "--schema", Self.predsSchema.path], in: dir)
        #expect(again.status == 64 && again.stderr.contains("preds") && again.stderr.contains("--name"), "create twice: \(again)")

        let drop = try await CLI.mbdata(["outputs", "drop", db.path, "--name", "preds"], in: dir)
        #expect(drop.status == 0, "drop: \(drop)")
        let empty = try await CLI.mbdata(["outputs", "list", db.path], in: dir)
        #expect(empty.status == 0 && empty.stdout.contains("no outputs"), "list after drop: \(empty)")
        if CLI.hasSQLite3 {
            #expect(try await CLI.sqlite(db, "select count(*) from sqlite_master where name = 'outputs_preds'", in: dir) == "0")
        }
        let dropAgain = try await CLI.mbdata(["outputs", "drop", db.path, "--name", "preds"], in: dir)
        #expect(dropAgain.status == 64 && dropAgain.stderr.contains("preds"), "drop of a missing output: \(dropAgain)")
    }

    @Test("a job's committed batch: list and inspect show its progress and coverage, export holds its rows")
    func jobProgress() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.preds(rows: "(1797, 3, zeroblob(40))", in: dir)
        let dataset = try Dataset(path: db.path)
        let job = try await dataset.inferenceJob(
            output: "preds", parameters: PlanParameters(seed: 0, batchSize: 256, tail: .pad, split: "train", shuffle: false))
        let ids = job.plan.sampleIDs(epoch: 0, batch: 0).compactMap { $0 }
        let predictions = ids.map { $0 % 10 }
        let tensors = [
            "pred": Tensor(name: "pred", dtype: .int64, shape: [256], bytes: predictions.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }),
            "prob": Tensor(name: "prob", dtype: .float32, shape: [256, 10], bytes: [UInt8](repeating: 0, count: 256 * 40)),
        ]
        #expect(try await dataset.commitOutputs(tensors, batch: 0, of: job).rows == 256)

        let list = try await CLI.mbdata(["outputs", "list", db.path], in: dir)
        #expect(list.stdout.contains("257 rows") && list.stdout.contains("job \(job.id): 1/8 batches finished"), "\(list)")
        let inspect = try await CLI.mbdata(["inspect", db.path], in: dir)
        #expect(inspect.stdout.contains("train 257/1797") && inspect.stdout.contains("1/8 batches"), "\(inspect)")
        let listJSON = try await CLI.mbdata(["outputs", "list", "--json", db.path], in: dir)
        let jobs = try #require(try JSONSerialization.jsonObject(with: Data(listJSON.stdout.utf8)) as? [[String: Any]]).first?["jobs"] as? [[String: Any]]
        #expect(jobs?.first?["finishedBatches"] as? Int == 1 && jobs?.first?["batches"] as? Int == 8, "\(listJSON.stdout)")

        let export = try await CLI.mbdata(["outputs", "export", db.path, "--name", "preds", "--format", "csv", "--out", dir.path("p.csv")], in: dir)
        #expect(export.status == 0, "\(export)")
        let lines = try String(contentsOf: dir.file("p.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
        let exported = lines.map { $0.split(separator: ",").prefix(2).map { Int64($0)! } }
        let expected = (zip(ids, predictions).map { [$0, $1] } + [[1797, 3]]).sorted { $0[0] < $1[0] }
        #expect(exported == expected)
    }

    @Test(
        "an output schema the rules refuse: exit 65 naming the schema file and the field",
        arguments: [
            (#"{"name": "o", "fields": [{"name": "pred", "dtype": "int64"}, {"name": "caption", "dtype": "string"}]}"#, "caption"),
            (#"{"name": "o", "fields": [{"name": "tokens", "dtype": "int32", "shape": [null]}]}"#, "tokens"),
            (#"{"name": "o", "key": "pred", "fields": [{"name": "pred", "dtype": "int64"}]}"#, "pred"),
            (#"{"name": "o", "fields": [{"name": "prob", "dtype": "float33"}]}"#, "prob"),
        ])
    func refusedSchemas(schema: String, field: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.digits(in: dir)
        let path = try dir.write("bad-output.schema.json", schema)
        let result = try await CLI.mbdata(["outputs", "create", db.path, "--name", "o", "--schema", path], in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("bad-output.schema.json"), "stderr should name the file: \(result.stderr)")
        #expect(result.stderr.contains("field '\(field)'"), "stderr should name the field: \(result.stderr)")
        let list = try await CLI.mbdata(["outputs", "list", db.path], in: dir)
        #expect(list.stdout.contains("no outputs"), "a refused output leaves nothing: \(list)")
    }

    @Test("bad names, a missing schema file and an unknown output: 64, 66 and 64")
    func usageErrors() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.digits(in: dir)
        let badName = try await CLI.mbdata(["outputs", "create", db.path, "--name", "1preds", "--schema", Self.predsSchema.path], in: dir)
        #expect(badName.status == 64 && badName.stderr.contains("1preds"), "\(badName)")
        let noSchema = try await CLI.mbdata(["outputs", "create", db.path, "--name", "preds", "--schema", dir.path("missing.json")], in: dir)
        #expect(noSchema.status == 66 && noSchema.stderr.contains("missing.json"), "\(noSchema)")
        let unknown = try await CLI.mbdata(["outputs", "export", db.path, "--name", "nope", "--format", "csv", "--out", dir.path("x.csv")], in: dir)
        #expect(unknown.status == 64 && unknown.stderr.contains("nope"), "\(unknown)")
        #expect(!FileManager.default.fileExists(atPath: dir.path("x.csv")))
        let badFormat = try await CLI.mbdata(["outputs", "export", db.path, "--name", "preds", "--format", "parquet", "--out", dir.path("x")], in: dir)
        #expect(badFormat.status == 64, "\(badFormat)")
    }

    /// An output of every kind of column, three rows inserted out of `_id` order.
    static let mixedSchema = #"""
        {"name": "mixed", "fields": [
          {"name": "pred", "dtype": "int64"},
          {"name": "score", "dtype": "float64"},
          {"name": "flag", "dtype": "bool"},
          {"name": "prob", "dtype": "float32", "shape": [2, 2]},
          {"name": "half", "dtype": "float16", "shape": [2]}]}
        """#

    static func insertMixedRows(_ db: URL, in dir: TemporaryDirectory) async throws {
        let rows = [
            "(5, 7, 0.1, 1, \(blob([Float(0.1), -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude].map(\.bitPattern))), \(blob([Float16(0.5), -2].map(\.bitPattern))))",
            "(1, -9223372036854775807 - 1, 1e300, 0, \(blob([Float(1), 2, 3, 4].map(\.bitPattern))), \(blob([UInt16(0x7BFF), 0x0001])))",
            "(1797, 9223372036854775807, -2.5, 1, \(blob([Float(-1.5), 0.25, 100, 1e10].map(\.bitPattern))), \(blob([Float16(0), 1].map(\.bitPattern))))",
        ]
        _ = try await CLI.sqlite(db, "insert into outputs_mixed(_id, pred, score, flag, prob, half) values " + rows.joined(separator: ", "), in: dir)
    }

    @Test("export: JSON lines, CSV and NPY files hold every row in _id order, values exact")
    func exportRoundTrip() async throws {
        guard CLI.hasSQLite3 else { return }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.digits(in: dir)
        let schema = try dir.write("mixed.schema.json", Self.mixedSchema)
        let create = try await CLI.mbdata(["outputs", "create", db.path, "--name", "mixed", "--schema", schema], in: dir)
        #expect(create.status == 0, "\(create)")
        try await Self.insertMixedRows(db, in: dir)

        let jsonl = try await CLI.mbdata(["outputs", "export", db.path, "--name", "mixed", "--format", "jsonl", "--out", dir.path("mixed.jsonl")], in: dir)
        #expect(jsonl.status == 0 && jsonl.stderr.contains("3 rows"), "\(jsonl)")
        #expect(
            try String(contentsOf: dir.file("mixed.jsonl"), encoding: .utf8) == """
                {"_id": 1, "pred": -9223372036854775808, "score": 1e+300, "flag": false, "prob": [[1.0, 2.0], [3.0, 4.0]], "half": [65504.0, 6e-08]}
                {"_id": 5, "pred": 7, "score": 0.1, "flag": true, "prob": [[0.1, -0.0], [3.4028235e+38, 1e-45]], "half": [0.5, -2.0]}
                {"_id": 1797, "pred": 9223372036854775807, "score": -2.5, "flag": true, "prob": [[-1.5, 0.25], [100.0, 1e+10]], "half": [0.0, 1.0]}

                """)

        let csv = try await CLI.mbdata(["outputs", "export", db.path, "--name", "mixed", "--format", "csv", "--out", dir.path("mixed.csv")], in: dir)
        #expect(csv.status == 0, "\(csv)")
        #expect(
            try String(contentsOf: dir.file("mixed.csv"), encoding: .utf8) == """
                _id,pred,score,flag,prob,half
                1,-9223372036854775808,1e+300,false,"[[1.0, 2.0], [3.0, 4.0]]","[65504.0, 6e-08]"
                5,7,0.1,true,"[[0.1, -0.0], [3.4028235e+38, 1e-45]]","[0.5, -2.0]"
                1797,9223372036854775807,-2.5,true,"[[-1.5, 0.25], [100.0, 1e+10]]","[0.0, 1.0]"

                """)

        let npy = try await CLI.mbdata(["outputs", "export", db.path, "--name", "mixed", "--format", "npy", "--out", dir.path("mixed")], in: dir)
        #expect(npy.status == 0, "\(npy)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path("mixed")).sorted()
        #expect(files == ["_id.npy", "flag.npy", "half.npy", "pred.npy", "prob.npy", "score.npy"], "no temporary file is left: \(files)")
        func npyFile(_ name: String, descr: String, shape: String, data: [UInt8]) throws {
            let bytes = try [UInt8](Data(contentsOf: dir.file("mixed/\(name).npy")))
            var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }" + String(repeating: " ", count: 20)
            while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
            header += "\n"
            let prefix = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
            #expect(bytes == prefix + Array(header.utf8) + data, "\(name).npy")
        }
        func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } } }
        try npyFile("_id", descr: "<i8", shape: "(3,)", data: le([Int64(1), 5, 1797]))
        try npyFile("pred", descr: "<i8", shape: "(3,)", data: le([Int64.min, 7, Int64.max]))
        try npyFile("score", descr: "<f8", shape: "(3,)", data: le([1e300, 0.1, -2.5].map(\.bitPattern)))
        try npyFile("flag", descr: "|b1", shape: "(3,)", data: [0, 1, 1])
        try npyFile(
            "prob", descr: "<f4", shape: "(3, 2, 2)",
            data: le([Float(1), 2, 3, 4, 0.1, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude, -1.5, 0.25, 100, 1e10].map(\.bitPattern)))
        try npyFile("half", descr: "<f2", shape: "(3, 2)", data: le([UInt16(0x7BFF), 0x0001] + [Float16(0.5), -2, 0, 1].map(\.bitPattern)))

        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "verify with sound outputs: \(verify)")
    }

    @Test("a stored value that does not fit: export exits 65 naming row and field and leaves no file; verify finds it")
    func corruptValue() async throws {
        guard CLI.hasSQLite3 else { return }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.preds(rows: "(3, 1, zeroblob(40)), (4, 2, zeroblob(39))", in: dir)
        for format in ["jsonl", "npy"] {
            let out = dir.path("preds.\(format)")
            let result = try await CLI.mbdata(["outputs", "export", db.path, "--name", "preds", "--format", format, "--out", out], in: dir)
            #expect(result.status == 65 && result.stderr.contains("_id 4") && result.stderr.contains("field 'prob'"), "\(format): \(result)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: format == "npy" ? out : dir.url.path)) ?? []
            #expect(!left.contains { $0.hasPrefix("preds.jsonl") || $0.hasSuffix(".npy") || $0.contains(".tmp-") }, "\(format) left \(left)")
        }
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 1 && verify.stdout.contains("prob"), "verify: \(verify)")
    }

    @Test("a row whose _id is not a sample: verify exits 1 naming it")
    func orphanRow() async throws {
        guard CLI.hasSQLite3 else { return }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = try await Self.preds(rows: "(3, 1, zeroblob(40)), (99999, 2, zeroblob(40))", in: dir)
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 1 && verify.stdout.contains("99999"), "verify: \(verify)")
    }
}
