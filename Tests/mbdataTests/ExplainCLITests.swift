import Foundation
import MBData
import MBDataTestSupport
import Testing

/// `mbdata explain`: a step's samples and a sample's steps, as text and JSON, for a plan
/// named by its parameters and for a shard directory, with the library's answer.
@Suite("mbdata explain")
struct ExplainCLITests {
    static let plan = ["--batch-size", "4", "--seed", "7", "--world", "2", "--pad"]
    static let pack = ["--pack", "tokens=64", "--pack-window", "16"]

    static func json(_ result: CLIResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result)")
    }

    @Test("a packed step's JSON is the library's lineage; --key finds the same rows; the text names them")
    func packedStepAndKey() async throws {
        let dir = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: dir)
        let lineage = try await PlanLineage.make(
            dataset: Dataset(path: path), name: "tokens", parameters: PlanParameters(seed: 7, batchSize: 4, world: 2, tail: .pad),
            packing: PackingSpec(field: "tokens", rowLength: 64, window: 16))
        let expected = try await lineage.batch(epoch: 1, step: 3)

        let step = try await CLI.mbdata(["explain", path] + Self.plan + Self.pack + ["--epoch", "1", "--step", "3", "--json"], in: dir)
        try #require(step.status == 0, "\(step)")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        #expect(try decoder.decode(BatchLineage.self, from: Data(step.stdout.utf8)) == expected)

        let entry = try #require(expected.entries.first)
        let key = try await CLI.mbdata(["explain", path] + Self.plan + Self.pack + ["--epoch", "1", "--key", try #require(entry.key)], in: dir)
        try #require(key.status == 0, "\(key)")
        #expect(key.stdout.contains("sample _id \(entry.id) (key \(entry.key!)): epoch 1"), "\(key)")
        #expect(key.stdout.contains("segment") && key.stdout.contains("offset"), "the packing layout's columns: \(key)")

        let text = try await CLI.mbdata(["explain", path] + Self.plan + Self.pack + ["--epoch", "1", "--step", "3", "--rank", "1"], in: dir)
        try #require(text.status == 0, "\(text)")
        #expect(text.stdout.hasPrefix("epoch 1 step 3 of \(expected.batchesPerEpoch): ranks 1, 2 rows each of 64 tokens, efficiency"), "\(text)")
        let rankOne = expected.entries.filter { $0.rank == 1 }
        #expect(text.stdout.split(separator: "\n").count == 2 + rankOne.count, "a heading, a header and a line per segment: \(text)")
    }

    @Test("a shard directory's plan comes from its manifest; the step and the id agree")
    func shardDirectory() async throws {
        let dir = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: dir)
        let shards = dir.path("shards")
        let shard = try await CLI.mbdata(["shard", path, "--out", shards, "--epochs", "2"] + Self.plan + Self.pack, in: dir)
        try #require(shard.status == 0, "\(shard)")
        let fromShards = try await CLI.mbdata(["explain", shards, "--dataset", path, "--epoch", "1", "--step", "0", "--json"], in: dir)
        let fromPlan = try await CLI.mbdata(["explain", path] + Self.plan + Self.pack + ["--epoch", "1", "--step", "0", "--json"], in: dir)
        try #require(fromShards.status == 0 && fromPlan.status == 0, "\(fromShards)\n\(fromPlan)")
        #expect(fromShards.stdout == fromPlan.stdout)

        let byID = try await CLI.mbdata(["explain", shards, "--dataset", path, "--epoch", "1", "--id", "7", "--json"], in: dir)
        try #require(byID.status == 0, "\(byID)")
        let appearances = try #require(try Self.json(byID)["appearances"] as? [[String: Any]])
        let tokens = TokenDataset.tokens(6).count
        #expect(appearances.reduce(0) { $0 + ($1["length"] as? Int ?? 0) } == tokens, "every token of sample 7: \(byID)")
    }

    @Test("an unpacked step lists its samples; bad combinations exit 64")
    func unpackedAndRefusals() async throws {
        let dir = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: dir)
        let step = try await CLI.mbdata(["explain", path] + Self.plan + ["--step", "0", "--json"], in: dir)
        try #require(step.status == 0, "\(step)")
        let entries = try #require(try Self.json(step)["entries"] as? [[String: Any]])
        #expect(entries.count == 4 && entries.allSatisfy { $0["segment"] == nil && ($0["key"] as? String)?.hasPrefix("s") == true })

        for arguments in [
            ["explain", path, "--step", "0"],  // no batch size
            ["explain", path] + Self.plan,  // neither --step nor --key nor --id
            ["explain", path] + Self.plan + ["--step", "0", "--key", "s1"],
            ["explain", dir.path("")] + ["--step", "0"],  // a directory without --dataset
            ["explain", path] + Self.plan + ["--pack", "tokens", "--step", "0"],
        ] {
            let result = try await CLI.mbdata(arguments, in: dir)
            #expect(result.status == 64 && !result.signaled, "\(arguments): \(result)")
        }
        let late = try await CLI.mbdata(["explain", path] + Self.plan + ["--step", "75"], in: dir)
        #expect(late.status == 64 && late.stderr.contains("step 75"), "\(late)")
        let unknown = try await CLI.mbdata(["explain", path] + Self.plan + ["--key", "nobody"], in: dir)
        #expect(unknown.status == 64 && unknown.stderr.contains("nobody"), "\(unknown)")
    }

    @Test("a mixture's step names each row's source, key and pass; --source finds a sample; its shards explain the same")
    func mixture() async throws {
        let dir = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: dir)
        let (web, code) = (dir.path("web.mbdb"), dir.path("code.mbdb"))
        try FileManager.default.copyItem(atPath: path, toPath: web)
        try FileManager.default.copyItem(atPath: path, toPath: code)
        // Epoch 1 draws entries 600…1199 of web's stream of passes of 300 (passes 2 and 3), 200…399 of code's (0 and 1).
        let mix = ["--mix", "\(web)=0.75", "\(code)=0.25", "--epoch-size", "800", "--batch-size", "4", "--seed", "7", "--world", "2"]
        let lineage = try await PlanLineage.make(
            mixture: [MixtureComponent(dataset: try Dataset(path: web), weight: 0.75), MixtureComponent(dataset: try Dataset(path: code), weight: 0.25)],
            epochSize: 800, parameters: PlanParameters(seed: 7, batchSize: 4, world: 2))
        let expected = try await lineage.batch(epoch: 1, step: 5)
        #expect(expected.entries.allSatisfy { ($0.dataset == "web" && [2, 3].contains($0.pass)) || ($0.dataset == "code" && [0, 1].contains($0.pass)) })

        let step = try await CLI.mbdata(["explain"] + mix + ["--epoch", "1", "--step", "5", "--json"], in: dir)
        try #require(step.status == 0, "\(step)")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        #expect(try decoder.decode(BatchLineage.self, from: Data(step.stdout.utf8)) == expected)
        let text = try await CLI.mbdata(["explain"] + mix + ["--epoch", "1", "--step", "5"], in: dir)
        #expect(text.status == 0 && text.stdout.split(separator: "\n")[1].contains("pass"), "\(text)")

        let entry = try #require(expected.entries.first)
        let key = try await CLI.mbdata(["explain"] + mix + ["--epoch", "1", "--key", try #require(entry.key), "--source", entry.dataset], in: dir)
        try #require(key.status == 0, "\(key)")
        #expect(key.stdout.contains("sample _id \(entry.id) of \(entry.dataset) (key \(entry.key!)): epoch 1"), "\(key)")
        let noSource = try await CLI.mbdata(["explain"] + mix + ["--epoch", "1", "--id", "3"], in: dir)
        #expect(noSource.status != 0 && noSource.stderr.contains("--source"), "\(noSource)")

        let shards = dir.path("shards")
        let shard = try await CLI.mbdata(["shard", "--out", shards, "--epochs", "2"] + mix, in: dir)
        try #require(shard.status == 0, "\(shard)")
        let fromShards = try await CLI.mbdata(["explain", shards, "--dataset", code, "--dataset", web, "--epoch", "1", "--step", "5", "--json"], in: dir)
        #expect(fromShards.status == 0 && fromShards.stdout == step.stdout, "\(fromShards)")
        let missing = try await CLI.mbdata(["explain", shards, "--dataset", web, "--epoch", "1", "--step", "5"], in: dir)
        #expect(missing.status != 0 && missing.stderr.contains("code"), "\(missing)")
    }
}

