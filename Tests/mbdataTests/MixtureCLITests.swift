import Foundation
import MBData
import MBDataTestSupport
import Testing

/// `mbdata shard --mix` (issue 14 §1, §3): a mixture of two datasets written, shown by
/// `inspect`, verified, found up to date on a re-run; wrong uses refused with exit 64.
@Suite("CLI shard --mix")
struct MixtureCLITests {
    @Test("shard --mix writes the mixture; inspect shows it; verify passes; a re-run is up to date")
    func mixture() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let lines = try String(contentsOf: CLI.sample("digits/digits.jsonl"), encoding: .utf8).split(separator: "\n")
        for (name, part) in [("low", lines[..<300]), ("high", lines[300..<400])] {
            let source = try dir.write("\(name).jsonl", part.joined(separator: "\n") + "\n")
            let ingest = try await CLI.mbdata(
                ["ingest", dir.path("\(name).mbdb"), "--schema", CLI.sample("digits/digits.schema.json").path, source], in: dir)
            try #require(ingest.status == 0, "ingest: \(ingest)")
        }
        let arguments = [
            "shard", "--mix", dir.path("low.mbdb") + "=repeat:0.5", dir.path("high.mbdb") + "=choose:250", "--out", dir.path("shards"),
            "--batch-size", "40", "--world", "2", "--seed", "3",
        ]
        let shard = try await CLI.mbdata(arguments, in: dir)
        #expect(shard.status == 0 && shard.stderr.contains("mixture  2 sources, 400 draws per epoch"), "\(shard)")
        let inspect = try await CLI.mbdata(["inspect", dir.path("shards")], in: dir)
        #expect(inspect.status == 0, "\(inspect)")
        #expect(inspect.stdout.contains("_source 0  low   weight repeat:0.5, 150 draws per epoch of 300 samples"), "\(inspect)")
        #expect(inspect.stdout.contains("_source 1  high  weight choose:250, 250 draws per epoch of 100 samples"), "\(inspect)")
        let json = try CLI.jsonObject(try await CLI.mbdata(["inspect", "--json", dir.path("shards")], in: dir).stdout)
        let mixture = try #require((json["manifest"] as? [String: Any])?["mixture"] as? [String: Any])
        #expect(mixture["epoch_size"] as? Int == 400)
        let verify = try await CLI.mbdata(["verify", dir.path("shards")], in: dir)
        #expect(verify.status == 0, "\(verify)")
        let again = try await CLI.mbdata(arguments, in: dir)
        #expect(again.status == 0 && again.stderr.contains("up to date"), "\(again)")
    }

    @Test("shard --mix refuses --no-shuffle, a bad item, --pack with --pad-to, and --epoch-size without --mix")
    func refused() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let cases: [([String], String)] = [
            (["--mix", "a.mbdb=0.5", "b.mbdb=0.5", "--pack", "tokens=8", "--pad-to", "tokens=8"], "--pack and --pad-to exclude each other"),
            (["--mix", "a.mbdb=0.5", "--no-shuffle"], "always shuffles"),
            (["--mix", "a.mbdb=half"], "PATH=WEIGHT"),
            (["--mix", "a.mbdb=0.5", "a.mbdb=0.5"], "item 2 \"a.mbdb=0.5\" names a.mbdb again"),
            (["--mix", "a.mbdb=0.5", "b.mbdb"], "item 2 \"b.mbdb\" is not PATH=WEIGHT: it has no '='"),
            (["a.mbdb", "--epoch-size", "10"], "--epoch-size applies to --mix only"),
            (["a.mbdb", "--mix", "b.mbdb=1"], "one dataset file or a --mix"),
        ]
        for (options, message) in cases {
            let result = try await CLI.mbdata(["shard"] + options + ["--out", dir.path("o"), "--batch-size", "4"], in: dir)
            #expect(result.status == 64 && result.stderr.contains(message), "\(options): \(result)")
        }
    }

    @Test("shard --mix --pack writes a packed mixture; inspect shows both; verify passes; explain names each segment's source")
    func packedMixture() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var paths: [String] = []
        let schema = try dir.write("tokens.schema.json", TokenDataset.schemaJSON)
        for (source, (name, count)) in [("web", 40), ("code", 25)].enumerated() {
            let lines = (0..<count).map { index in
                let tokens = TokenDataset.tokens(index + 50 * source).map(String.init).joined(separator: ",")
                return #"{"name": "\#(name)\#(index)", "label": \#(index), "tokens": [\#(tokens)]}"#
            }
            let jsonl = try dir.write("\(name).jsonl", lines.joined(separator: "\n") + "\n")
            let path = dir.path("\(name).mbdb")
            let ingest = try await CLI.mbdata(["ingest", path, "--schema", schema, jsonl], in: dir)
            try #require(ingest.status == 0, "ingest: \(ingest)")
            paths.append(path)
        }
        let plan = ["--mix", paths[0] + "=0.6", paths[1] + "=0.4", "--epoch-size", "80", "--batch-size", "8", "--world", "2", "--seed", "3"]
        let pack = ["--pack", "tokens=64", "--pack-window", "8"]
        let shard = try await CLI.mbdata(["shard", "--out", dir.path("shards"), "--epochs", "2"] + plan + pack, in: dir)
        #expect(shard.status == 0 && shard.stderr.contains("mixture  2 sources, 80 draws per epoch") && shard.stderr.contains("efficiency"), "\(shard)")
        let inspect = try await CLI.mbdata(["inspect", dir.path("shards")], in: dir)
        #expect(inspect.status == 0 && inspect.stdout.contains("_source 1  code") && inspect.stdout.contains("packing tokens into rows of 64"), "\(inspect)")
        let verify = try await CLI.mbdata(["verify", dir.path("shards")], in: dir)
        #expect(verify.status == 0, "\(verify)")

        let explain = try await CLI.mbdata(["explain", "--epoch", "1", "--step", "2", "--json"] + plan + pack, in: dir)
        #expect(explain.status == 0, "\(explain)")
        let entries = try #require(CLI.jsonObject(explain.stdout)["entries"] as? [[String: Any]])
        #expect(!entries.isEmpty && entries.allSatisfy { ["web", "code"].contains($0["dataset"] as? String) && $0["segment"] is Int && $0["id"] is Int })
        #expect(Set(entries.compactMap { $0["source"] as? Int }) .isSubset(of: [0, 1]))
        let fromShards = try await CLI.mbdata(
            ["explain", dir.path("shards"), "--dataset", paths[0], "--dataset", paths[1], "--epoch", "1", "--step", "2", "--json"], in: dir)
        #expect(fromShards.status == 0 && fromShards.stdout == explain.stdout, "\(fromShards)")
        let text = try await CLI.mbdata(["explain", "--epoch", "1", "--step", "2"] + plan + pack, in: dir)
        #expect(text.status == 0 && text.stdout.contains("segment") && text.stdout.contains("code"), "\(text)")
    }
}
