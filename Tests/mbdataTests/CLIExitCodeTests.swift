import Foundation
import MBDataTestSupport
import Testing

/// The documented exit statuses (0 ok, 1 verify found problems, 64 usage, 65 data, 66 no
/// input, 69 daemon unavailable, 74 I/O) and messages that point at the bad input.
@Suite("CLI exit codes and messages")
struct CLIExitCodeTests {
    static let tabularSchema = CLI.sample("formats/tabular.schema.json")

    static func good(_ id: Int) -> String {
        "{\"id\": \(id), \"features\": [1.0, 2.0, 3.0, 4.0], \"label\": \(id % 3)}"
    }

    @Test("a record that breaks the schema: exit 65 naming file, line and field; earlier chunks stay")
    func badRecord() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("bad.mbdb")
        var lines = (1...4).map(Self.good)
        lines.append("{\"id\": 5, \"features\": [1.0, 2.0, 3.0], \"label\": 0}")  // line 5: 3 of 4 features
        lines.append(Self.good(6))
        let source = try dir.write("bad-record.jsonl", lines.joined(separator: "\n") + "\n")

        let result = try await CLI.mbdata(
            ["ingest", db.path, "--schema", Self.tabularSchema.path, source, "--batch-rows", "2"], in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("bad-record.jsonl"), "stderr should name the file: \(result.stderr)")
        #expect(result.stderr.contains("line 5"), "stderr should name the line: \(result.stderr)")
        #expect(result.stderr.contains("features"), "stderr should name the field: \(result.stderr)")

        // --on-error fail: the chunk holding the bad record is rolled back, the ones before it stay.
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "verify after a failed ingest: \(verify)")
        if CLI.hasSQLite3 {
            #expect(try await CLI.sampleCount(db, in: dir) == 4)
        }
    }

    @Test("malformed JSON: exit 65 naming file and line")
    func malformedJSON() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("bad.mbdb")
        let text = Self.good(1) + "\n" + Self.good(2) + "\n" + "{\"id\": 3, \"features\": [1.0, 2.0, 3.0, 4.0], \"label\": 0\n"
        let source = try dir.write("broken.jsonl", text)
        let result = try await CLI.mbdata(["ingest", db.path, "--schema", Self.tabularSchema.path, source], in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("broken.jsonl") && result.stderr.contains("line 3"), "\(result.stderr)")
    }

    @Test("a wrong type: exit 65 naming the field")
    func wrongType() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("bad.mbdb")
        let text = Self.good(1) + "\n" + "{\"id\": 2, \"features\": [1.0, 2.0, 3.0, 4.0], \"label\": \"two\"}\n"
        let source = try dir.write("types.jsonl", text)
        let result = try await CLI.mbdata(["ingest", db.path, "--schema", Self.tabularSchema.path, source], in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("types.jsonl") && result.stderr.contains("line 2") && result.stderr.contains("label"), "\(result.stderr)")
    }

    /// An NPY file whose header declares `shape` for `descr`, with 8 data bytes.
    static func npy(descr: String, shape: String) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let length = header.utf8.count
        return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(header.utf8) + [UInt8](repeating: 1, count: 8))
    }

    @Test(
        "an NPY header with absurd sizes: exit 65 naming the file, never a signal",
        arguments: [("<i8", "(4611686018427387904,)"), ("|S9223372036854775807", "(2,)"), ("<U4611686018427387904", "(1,)"), ("<i8", "(1, 4294967296, 4294967296)")])
    func absurdNPYHeaders(descr: String, shape: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try Self.npy(descr: descr, shape: shape).write(to: dir.file("label.npy"))
        let schema = try dir.write("s.json", #"{"name": "l", "fields": [{"name": "label", "dtype": "int64"}]}"#)
        let result = try await CLI.mbdata(["ingest", dir.file("x.mbdb").path, "--schema", schema, "label=\(dir.file("label.npy").path)"], in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("label.npy"), "\(result.stderr)")
    }

    @Test("an NPZ whose member fails its CRC-32: exit 65 naming the member, nothing ingested")
    func npzWithBadCRC() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var bytes = try Data(contentsOf: CLI.sample("formats/tabular.npz"))
        // The last byte of the first member's data (stored members: the archive holds the raw .npy).
        let firstDirectoryEntry = try #require(bytes.firstRange(of: Data([0x50, 0x4B, 0x01, 0x02]))).lowerBound
        let localNameLength = Int(bytes[26]) | Int(bytes[27]) << 8
        let localExtraLength = Int(bytes[28]) | Int(bytes[29]) << 8
        let dataStart = 30 + localNameLength + localExtraLength
        let size = Int(bytes[firstDirectoryEntry + 20]) | Int(bytes[firstDirectoryEntry + 21]) << 8
        bytes[dataStart + size - 1] ^= 0x01
        try bytes.write(to: dir.file("bad.npz"))
        let result = try await CLI.mbdata(
            ["ingest", dir.file("x.mbdb").path, "--schema", CLI.sample("formats/tabular.schema.json").path, dir.file("bad.npz").path, "--batch-rows", "1"],
            in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("bad.npz:") && result.stderr.contains("bad CRC-32"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.mbdb").path), "nothing of the archive was committed")
    }

    @Test("a missing source file: exit 66 naming it")
    func missingSource() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let missing = dir.file("no-such-file.jsonl")
        let result = try await CLI.mbdata(["ingest", dir.file("x.mbdb").path, "--schema", Self.tabularSchema.path, missing.path], in: dir)
        #expect(result.status == 66 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("no-such-file.jsonl"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.mbdb").path), "no dataset is left behind")
    }

    @Test("a missing schema file: exit 66")
    func missingSchema() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = try dir.write("ok.jsonl", Self.good(1) + "\n")
        let result = try await CLI.mbdata(["ingest", dir.file("x.mbdb").path, "--schema", dir.file("nope.schema.json").path, source], in: dir)
        #expect(result.status == 66 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("nope.schema.json"), "\(result.stderr)")
    }

    @Test(
        "a bad command line: exit 64",
        arguments: [
            ["ingest", "DB", "--schema", "S", "data.jsonl", "--bogus"],
            ["ingest"],
            ["frobnicate", "DB"],
            ["ingest", "DB", "--schema", "S", "data.jsonl", "--on-error", "sometimes"],
            ["ingest", "DB", "--schema", "S", "data.jsonl", "--batch-rows", "many"],
        ])
    func usageErrors(arguments: [String]) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let result = try await CLI.mbdata(arguments, in: dir)
        #expect(result.status == 64 && !result.signaled, "mbdata \(arguments.joined(separator: " ")): \(result)")
        #expect(!result.stderr.isEmpty)
        // Nothing was created for a command that was refused.
        #expect(!FileManager.default.fileExists(atPath: dir.file("DB").path))
    }

    @Test(
        "an option value out of its documented range: exit 64 naming the flag, nothing created",
        arguments: [
            (["ingest", "DB", "--schema", "S", "t.bin", "--seq-len", "4611686018427387904"], "--seq-len"),
            (["ingest", "DB", "--schema", "S", "t.bin", "--seq-len", "1000000000000"], "--seq-len"),
            (["ingest", "DB", "--schema", "S", "t.bin", "--seq-len", "0"], "--seq-len"),
            (["ingest", "DB", "--schema", "S", "d.jsonl", "--batch-rows", "100000000000"], "--batch-rows"),
            (["ingest", "DB", "--schema", "S", "d.jsonl", "--max-record-mb", "0"], "--max-record-mb"),
            (["ingest", "DB", "--schema", "S", "d.jsonl", "--max-record-mb", "9007199254740993"], "--max-record-mb"),
            (["ingest", "DB", "--schema", "S", "d.jsonl", "--val-fraction", "nan"], "--val-fraction"),
            (["ingest", "DB", "--schema", "S", "d.jsonl", "--max-errors", "-1"], "--max-errors"),
            (["shard", "DB", "--out", "O", "--batch-size", "0"], "--batch-size"),
            (["shard", "DB", "--out", "O", "--batch-size", "4611686018427387904"], "--batch-size"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--world", "3"], "--world"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--world", "0"], "--world"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--epochs", "9223372036854775807"], "--epochs"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--first-epoch", "9223372036854775807"], "--first-epoch"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--shard-mb", "9223372036854775807"], "--shard-mb"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--level", "13"], "--level"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--depth", "0"], "--depth"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--pad-to", "text=0"], "--pad-to"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--pack", "tokens=0"], "--pack"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--pack", "tokens=8", "--pack-window", "0"], "--pack-window"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--pack", "tokens=8", "--overlong", "keep"], "--overlong"),
            (["shard", "DB", "--out", "O", "--batch-size", "4", "--pack", "tokens=8", "--pad-to", "tokens=8"], "--pack"),
        ])
    func optionRanges(arguments: [String], flag: String) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let result = try await CLI.mbdata(arguments, in: dir)
        #expect(result.status == 64 && !result.signaled, "mbdata \(arguments.joined(separator: " ")): \(result)")
        #expect(result.stderr.contains(flag), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("DB").path))
    }

    @Test("a record over --max-record-mb: exit 65, the message names the flag that raises the limit")
    func recordOverTheLimit() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // Valid JSON, 1.5 MiB of it white space: over a 1 MiB limit before it is parsed.
        let big = "{\"id\": 2," + String(repeating: " ", count: 3 << 19) + "\"features\": [1.0, 2.0, 3.0, 4.0], \"label\": 1}"
        let source = try dir.write("big.jsonl", Self.good(1) + "\n" + big + "\n")
        let result = try await CLI.mbdata(
            ["ingest", dir.file("x.mbdb").path, "--schema", Self.tabularSchema.path, source, "--max-record-mb", "1"], in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("line 2") && result.stderr.contains("per-record limit of 1 MiB"), "\(result.stderr)")
        #expect(result.stderr.contains("(raise it with --max-record-mb)"), "\(result.stderr)")
    }

    @Test("--batch-rows 0 is refused with exit 64")
    func zeroBatchRows() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let source = try dir.write("ok.jsonl", Self.good(1) + "\n")
        let result = try await CLI.mbdata(
            ["ingest", dir.file("x.mbdb").path, "--schema", Self.tabularSchema.path, source, "--batch-rows", "0"], in: dir)
        #expect(result.status == 64 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("--batch-rows"), "\(result.stderr)")
    }

    @Test("verify finds a blob corrupted by hand: exit 1 naming the sample and field", .enabled(if: CLI.hasSQLite3))
    func verifyFindsCorruption() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("digits.mbdb")
        let ingest = try await CLI.mbdata(
            ["ingest", db.path, "--schema", CLI.sample("digits/digits.schema.json").path, CLI.sample("digits/digits.jsonl").path], in: dir)
        try #require(ingest.status == 0, "ingest: \(ingest)")
        let clean = try await CLI.mbdata(["verify", db.path], in: dir)
        try #require(clean.status == 0, "verify before corruption: \(clean)")

        _ = try await CLI.sqlite(db, "update samples set image = x'00' where _id = 3", in: dir)
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 1 && !verify.signaled, "\(verify)")
        let output = verify.stdout + verify.stderr
        #expect(output.contains("sample 3") && output.contains("image"), "verify should name sample 3 and field image: \(output)")
        #expect(!output.contains("sample 4"), "only sample 3 is damaged: \(output)")

        let json = try await CLI.mbdata(["verify", "--json", db.path], in: dir)
        #expect(json.status == 1, "\(json)")
        let report = try CLI.jsonObject(json.stdout)
        let problems = report["problems"] as? [String] ?? []
        #expect(problems.count == 1 && problems.first?.contains("sample 3") == true, "verify --json: \(json.stdout)")
        #expect(report["samplesChecked"] as? Int == 1797)
    }

    @Test("inspect, verify and ingest on a file that is not SQLite: exit 65, the file untouched")
    func notADataset() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // The classic slip: the data file where the dataset goes.
        let notDB = dir.file("digits.jsonl")
        try FileManager.default.copyItem(at: CLI.sample("digits/digits.jsonl"), to: notDB)
        let original = try Data(contentsOf: notDB)
        let attributes = try FileManager.default.attributesOfItem(atPath: notDB.path)

        for arguments in [
            ["inspect", notDB.path],
            ["verify", notDB.path],
            ["ingest", notDB.path, "--schema", CLI.sample("digits/digits.schema.json").path, CLI.sample("digits/digits.jsonl").path],
        ] {
            let result = try await CLI.mbdata(arguments, in: dir)
            #expect(result.status == 65 && !result.signaled, "mbdata \(arguments[0]): \(result)")
            #expect(result.stderr.contains("digits.jsonl"), "the message should name the file: \(result.stderr)")
            #expect(
                result.stderr.localizedCaseInsensitiveContains("sqlite") || result.stderr.contains("not a database")
                    || result.stderr.contains("dataset"),
                "the message should say it is not a dataset: \(result.stderr)")
            #expect(try Data(contentsOf: notDB) == original, "mbdata \(arguments[0]) modified the file")
        }
        let after = try FileManager.default.attributesOfItem(atPath: notDB.path)
        #expect(after[.size] as? NSNumber == attributes[.size] as? NSNumber)
        #expect(after[.modificationDate] as? Date == attributes[.modificationDate] as? Date)
    }

    @Test("inspect on a missing dataset: exit 65 naming it, nothing created")
    func inspectMissing() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("absent.mbdb")
        let result = try await CLI.mbdata(["inspect", db.path], in: dir)
        #expect(result.status != 0 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("absent.mbdb"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }
}

@Suite("--on-error skip / --max-errors")
struct SkipErrorsTests {
    /// 10 records; `bad` lists the 1-based lines made bad, each a different way.
    static func source(badLines: [Int]) -> String {
        (1...10).map { line in
            guard let index = badLines.firstIndex(of: line) else { return CLIExitCodeTests.good(line) }
            switch index % 3 {
            case 0: return "{\"id\": \(line), \"features\": [1.0, 2.0, 3.0], \"label\": 0}"
            case 1: return "{\"id\": \(line), \"features\": [1.0, 2.0, 3.0, 4.0], \"label\": \"x\"}"
            default: return "{\"id\": \(line), \"features\": [1.0, 2.0, 3.0, 4.0]}"
            }
        }.joined(separator: "\n") + "\n"
    }

    @Test("2 bad records with --max-errors 2: exit 0, both listed, the rest ingested")
    func withinLimit() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("skip.mbdb")
        let source = try dir.write("two-bad.jsonl", Self.source(badLines: [3, 8]))
        let result = try await CLI.mbdata(
            ["ingest", db.path, "--schema", CLIExitCodeTests.tabularSchema.path, source, "--on-error", "skip", "--max-errors", "2"],
            in: dir)
        #expect(result.status == 0 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("line 3") && result.stderr.contains("line 8"), "stderr should list both bad lines: \(result.stderr)")
        #expect(result.stderr.contains("8 rows added") && result.stderr.contains("2 bad records skipped"), "\(result.stderr)")
        let info = try CLI.jsonObject(try await CLI.mbdata(["inspect", "--json", db.path], in: dir).stdout)
        #expect(info["sampleCount"] as? Int == 8)
        if CLI.hasSQLite3 {
            #expect(try await CLI.sqlite(db, "select count(*) from samples where id in (3, 8)", in: dir) == "0")
        }
        #expect(try await CLI.mbdata(["verify", db.path], in: dir).status == 0)
    }

    @Test("3 bad records with --max-errors 2: exit 65")
    func overLimit() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("skip.mbdb")
        let source = try dir.write("three-bad.jsonl", Self.source(badLines: [2, 5, 9]))
        let result = try await CLI.mbdata(
            ["ingest", db.path, "--schema", CLIExitCodeTests.tabularSchema.path, source, "--on-error", "skip", "--max-errors", "2"],
            in: dir)
        #expect(result.status == 65 && !result.signaled, "\(result)")
        #expect(result.stderr.contains("max-errors"), "\(result.stderr)")
        #expect(result.stderr.contains("line 9"), "the message should name the record that went over the limit: \(result.stderr)")
        // Nothing was committed (the 10 records are one transaction), so the new dataset is not left behind.
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }
}
