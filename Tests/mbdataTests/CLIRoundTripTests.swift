import Foundation
import MBDataTestSupport
import Testing

/// `mbdata ingest` → `inspect` → `verify` on real data, read back with plain sqlite3.
@Suite("CLI round trip")
struct CLIRoundTripTests {
    @Test("ingest digits.jsonl, inspect --json, verify, sqlite3 sees the samples")
    func digitsRoundTrip() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("digits.mbdb")
        let schema = CLI.sample("digits/digits.schema.json")
        let jsonl = CLI.sample("digits/digits.jsonl")

        let ingest = try await CLI.mbdata(["ingest", db.path, "--schema", schema.path, jsonl.path], in: dir)
        #expect(ingest.status == 0 && !ingest.signaled, "ingest: \(ingest)")
        #expect(ingest.stderr.contains("1797 rows added"), "ingest summary: \(ingest.stderr)")

        let inspect = try await CLI.mbdata(["inspect", "--json", db.path], in: dir)
        #expect(inspect.status == 0, "inspect: \(inspect)")
        let info = try CLI.jsonObject(inspect.stdout)
        #expect(info["sampleCount"] as? Int == 1797, "inspect --json: \(inspect.stdout)")
        let version = try #require(info["datasetVersion"] as? Int, "inspect --json has no datasetVersion: \(inspect.stdout)")
        #expect(version >= 1)
        #expect((info["splits"] as? [String: Any])?["train"] as? Int == 1797)
        let schemaInfo = info["schema"] as? [String: Any]
        #expect(schemaInfo?["key"] as? String == "id")
        let ingests = try #require(info["ingests"] as? [[String: Any]], "inspect --json has no ingest log")
        #expect(ingests.count == 1)
        #expect(ingests.first?["status"] as? String == "complete")
        #expect(ingests.first?["rowsAdded"] as? Int == 1797)

        let text = try await CLI.mbdata(["inspect", db.path], in: dir)
        #expect(text.status == 0, "inspect: \(text)")
        #expect(text.stdout.contains("1797"), "inspect: \(text.stdout)")

        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "verify: \(verify)")
        #expect(verify.stdout.contains("ok"), "verify: \(verify.stdout)")

        if CLI.hasSQLite3 {
            #expect(try await CLI.sqlite(db, "select count(*) from samples", in: dir) == "1797")
            // The first record's values, as sqlite3 shows them: the image as 64 raw uint8 bytes.
            let firstLine = try #require(String(contentsOf: jsonl, encoding: .utf8).split(separator: "\n").first)
            let record = try CLI.jsonObject(String(firstLine))
            let rows = try #require(record["image"] as? [[Int]])
            let expectedHex = rows.joined().map { String(format: "%02X", $0) }.joined()
            let stored = try await CLI.sqlite(db, "select id, label, hex(image) from samples where id = 0", in: dir)
            #expect(stored == "0|\(record["label"] as? Int ?? -1)|\(expectedHex)")
            #expect(try await CLI.sqlite(db, "select count(distinct id), min(id), max(id) from samples", in: dir) == "1797|0|1796")
        }

        // Running the same ingest again adds nothing, and so does the same data from .npy files (key `id`).
        let again = try await CLI.mbdata(["ingest", db.path, "--schema", schema.path, jsonl.path], in: dir)
        #expect(again.status == 0, "second ingest: \(again)")
        #expect(again.stderr.contains("0 rows added"), "second ingest: \(again.stderr)")
        let npy = try await CLI.mbdata(
            [
                "ingest", db.path, "--format", "npy", "id=\(CLI.sample("digits/ids.npy").path)",
                "image=\(CLI.sample("digits/images.npy").path)", "label=\(CLI.sample("digits/labels.npy").path)",
            ], in: dir)
        #expect(npy.status == 0, "npy ingest: \(npy)")
        #expect(npy.stderr.contains("0 rows added") && npy.stderr.contains("1797 known keys skipped"), "npy ingest: \(npy.stderr)")
        let after = try CLI.jsonObject(try await CLI.mbdata(["inspect", "--json", db.path], in: dir).stdout)
        #expect(after["sampleCount"] as? Int == 1797)
        #expect(after["datasetVersion"] as? Int == version, "adding nothing must not bump the dataset version")
    }

    @Test("JSONL piped into `ingest … -` (stdin) is ingested whole, last partial chunk included")
    func stdinIngest() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let db = dir.file("stdin.mbdb")
        let schema = CLI.sample("formats/tabular.schema.json")
        // 2,500 records: more than a pipe buffer, and not a multiple of --batch-rows.
        let count = 2_500
        var text = ""
        for i in 0..<count {
            let features = i == 7 ? "[0.0, -1.5, 0.5, 2.0]" : "[\(i % 13).25, -\(i % 7).5, \(i), 0.125]"
            text += "{\"id\": \(1_000 + i), \"features\": \(features), \"label\": \(i % 10)}\n"
        }
        let data = try dir.write("generated.jsonl", text)
        let command = "cat \(shellQuoted(data)) | \(shellQuoted(try CLI.binary().path)) ingest \(shellQuoted(db.path)) "
            + "--schema \(shellQuoted(schema.path)) --batch-rows 1000 -"
        let ingest = try await CLI.shell(command, in: dir)
        #expect(ingest.status == 0 && !ingest.signaled, "stdin ingest: \(ingest)")
        #expect(ingest.stderr.contains("\(count) rows added"), "stdin ingest: \(ingest.stderr)")

        let info = try CLI.jsonObject(try await CLI.mbdata(["inspect", "--json", db.path], in: dir).stdout)
        #expect(info["sampleCount"] as? Int == count)
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "verify: \(verify)")
        if CLI.hasSQLite3 {
            #expect(try await CLI.sqlite(db, "select count(*), count(distinct id), min(id), max(id) from samples", in: dir) == "\(count)|\(count)|1000|\(1_000 + count - 1)")
            // float32 little-endian: 0.0, -1.5, 0.5, 2.0
            #expect(try await CLI.sqlite(db, "select hex(features), label from samples where id = 1007", in: dir) == "000000000000C0BF0000003F00000040|7")
        }
    }
}
