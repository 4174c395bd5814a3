import Foundation
import MBDataTestSupport
import MBData
import Testing

/// `mbdata verify` and `inspect` on shard directories edited as the probe edited
/// them: each ends with a documented exit status and a message naming the problem — never a
/// signal, and never minutes of work for a number in a manifest.
@Suite("CLI on corrupt shard sets")
struct ShardCLITests {
    /// digits ingested and sharded (world 2, two shuffled epochs) in a fresh directory.
    static func sharded(_ label: String = #function) async throws -> (dir: TemporaryDirectory, db: URL, shards: URL) {
        let dir = try TemporaryDirectory(label)
        let db = dir.file("digits.mbdb")
        let ingest = try await CLI.mbdata(
            ["ingest", db.path, "--schema", CLI.sample("digits/digits.schema.json").path, CLI.sample("digits/digits.jsonl").path], in: dir)
        try #require(ingest.status == 0, "ingest: \(ingest)")
        let shards = dir.file("shards")
        let shard = try await CLI.mbdata(
            ["shard", db.path, "--out", shards.path, "--batch-size", "64", "--epochs", "2", "--seed", "7", "--world", "2"], in: dir)
        try #require(shard.status == 0, "shard: \(shard)")
        return (dir, db, shards)
    }

    static func editManifest(_ shards: URL, _ change: (inout [String: Any]) -> Void) throws {
        let url = shards.appendingPathComponent("manifest.json")
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        change(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    static func editPlan(_ shards: URL, _ values: [String: Any]) throws {
        try editManifest(shards) { object in
            var plan = object["plan"] as! [String: Any]
            plan.merge(values) { $1 }
            object["plan"] = plan
        }
    }

    /// `verify` and `inspect` (text and JSON) both exit 65 within seconds, naming `message`.
    static func expectRefused(_ shards: URL, in dir: TemporaryDirectory, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for arguments in [["verify", shards.path], ["inspect", shards.path], ["inspect", "--json", shards.path]] {
            let result = try await CLI.mbdata(arguments, in: dir, timeout: 60)
            #expect(
                result.status == 65 && !result.signaled && !result.timedOut && result.stderr.contains(message),
                "\(arguments[0]) should exit 65 naming \"\(message)\": \(result)", sourceLocation: sourceLocation)
        }
    }

    @Test("a clean set: verify ok (fingerprint checked), with --dataset too; inspect shows it")
    func cleanSet() async throws {
        let (dir, db, shards) = try await Self.sharded()
        defer { dir.remove() }
        let verify = try await CLI.mbdata(["verify", shards.path, "--dataset", db.path], in: dir)
        #expect(verify.status == 0 && verify.stdout.contains("the fingerprint matches the batches' ids"), "\(verify)")
        let inspect = try await CLI.mbdata(["inspect", shards.path], in: dir)
        #expect(inspect.status == 0 && inspect.stdout.contains("epochs   0…1"), "\(inspect)")
    }

    @Test("a footer declaring 2^62 batches: verify and inspect exit 65")
    func hugeFooterCount() async throws {
        let (dir, _, shards) = try await Self.sharded()
        defer { dir.remove() }
        let url = shards.appendingPathComponent("shard-00000.mbshard")
        var bytes = [UInt8](try Data(contentsOf: url))
        let trailer = bytes.count - 24
        let footerLength = (0..<8).reduce(0) { $0 | Int(bytes[trailer + $1]) << (8 * $1) }
        let footerStart = trailer - footerLength
        bytes.replaceSubrange(footerStart..<(footerStart + 8), with: [0, 0, 0, 0, 0, 0, 0, 0x40])  // count = 2^62
        let hash = ShardFormat.xxh64(Array(bytes[footerStart..<trailer]))
        for i in 0..<8 { bytes[trailer + 8 + i] = UInt8(truncatingIfNeeded: hash >> (8 * UInt64(i))) }
        try Data(bytes).write(to: url)
        try await Self.expectRefused(shards, in: dir, "declares 4611686018427387904 entries")
    }

    @Test("manifests edited in one line: verify and inspect exit 65 at once")
    func editedManifests() async throws {
        let (dir, _, shards) = try await Self.sharded()
        defer { dir.remove() }
        let original = try Data(contentsOf: shards.appendingPathComponent("manifest.json"))
        let edits: [(values: [String: Any], message: String)] = [
            (["dropped_per_epoch": Int.min], "dropped_per_epoch is -9223372036854775808"),
            (["first_epoch": 1, "epochs": Int.max], "plan.epochs 9223372036854775807"),
            (["epochs": (1 << 53) + 1], "plan.epochs 9007199254740993"),
            (["pad_lengths": ["image": 8]], "pad_lengths names 'image'"),
        ]
        for edit in edits {
            try original.write(to: shards.appendingPathComponent("manifest.json"))
            try Self.editPlan(shards, edit.values)
            try await Self.expectRefused(shards, in: dir, edit.message)
        }
        try original.write(to: shards.appendingPathComponent("manifest.json"))
        try Self.editManifest(shards) { object in
            let list = object["shards"] as! [Any]
            object["shards"] = list + list
        }
        try await Self.expectRefused(shards, in: dir, "each listed once")
        try original.write(to: shards.appendingPathComponent("manifest.json"))
        try Self.editManifest(shards) { object in
            var totals = object["totals"] as! [String: Any]
            totals["samples"] = (totals["samples"] as! Int) - 1
            object["totals"] = totals
        }
        try await Self.expectRefused(shards, in: dir, "totals.samples is 3583")
    }

    @Test("an edited dataset version: verify exits 1 (fingerprint), --dataset exits 65 naming the version")
    func editedVersion() async throws {
        let (dir, db, shards) = try await Self.sharded()
        defer { dir.remove() }
        try Self.editManifest(shards) { object in
            var dataset = object["dataset"] as! [String: Any]
            dataset["version"] = 999
            object["dataset"] = dataset
        }
        let verify = try await CLI.mbdata(["verify", shards.path], in: dir)
        #expect(verify.status == 1 && verify.stdout.contains("fingerprint"), "\(verify)")
        let against = try await CLI.mbdata(["verify", shards.path, "--dataset", db.path], in: dir)
        #expect(against.status == 65 && against.stderr.contains("dataset version 999"), "\(against)")
    }
}
