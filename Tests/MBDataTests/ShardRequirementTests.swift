import Foundation
import Testing

@testable import MBData

/// The one rule deciding whether a shard set serves a plan: each kind of mismatch is
/// refused with a message that names the setting.
@Suite struct ShardRequirementTests {
    @Test func eachMismatchIsRefusedNamingTheSetting() async throws {
        let f = try await ShardTests.fixture()
        let written = f.manifest.plan.parameters
        try f.manifest.check(serves: ShardRequirement(plan: f.plan, schema: try await f.dataset.schema(), epochs: 0..<2, padLengths: [:]), source: "s")
        let parameterChanges: [(String, (inout PlanParameters) -> Void)] = [
            ("seed", { $0.seed = 8 }), ("batchSize", { $0.batchSize = 32 }), ("split", { $0.split = "train" }),
            ("tail", { $0.tail = .pad }), ("shuffle", { $0.shuffle = false }), ("world", { $0.world = 1 }),
        ]
        for (setting, change) in parameterChanges {
            var parameters = written
            change(&parameters)
            let error = #expect(throws: MBDataError.self) { try f.manifest.check(serves: ShardRequirement(parameters: parameters), source: "s") }
            #expect(error?.message.contains("written with \(setting) ") == true, "\(setting): \(String(describing: error))")
            #expect(error?.parameter == "PlanParameters.\(setting)")
            #expect(!f.manifest.serves(ShardRequirement(parameters: parameters)))
        }
        let epochs = #expect(throws: MBDataError.self) {
            try f.manifest.check(serves: ShardRequirement(parameters: written, epochs: 1..<3), source: "s")
        }
        #expect(epochs?.message.contains("epochs 0..<2") == true, "\(String(describing: epochs))")
        let padded = #expect(throws: MBDataError.self) {
            try f.manifest.check(serves: ShardRequirement(parameters: written, padLengths: ["image": 4]), source: "s")
        }
        #expect(padded?.message.contains("padLengths none, asked for image=4") == true, "\(String(describing: padded))")
        var otherSchema = try #require(try await f.dataset.schema())
        otherSchema.name += "-edited"
        let schema = #expect(throws: MBDataError.self) {
            try f.manifest.check(serves: ShardRequirement(plan: f.plan, schema: otherSchema), source: "s")
        }
        #expect(schema?.message.contains("schema") == true)
        // Another dataset version: the fingerprint differs.
        let extra = try f.dir.write("more.jsonl", #"{"id": 5000, "image": \#(Array(repeating: Array(repeating: 0, count: 8), count: 8)), "label": 1}"# + "\n")
        try await ingest(f.dataset, [extra])
        let newer = try await f.dataset.plan(written)
        let stale = #expect(throws: MBDataError.self) { try f.manifest.check(serves: ShardRequirement(plan: newer), source: "s") }
        #expect(stale?.message.contains("stale shards: made from dataset version 1") == true, "\(String(describing: stale))")
    }

    @Test func theLoaderOverShardsHonoursPadLengths() async throws {
        let f = try await ShardTests.fixture()
        var config = MultiBatchLoader.Configuration(plan: f.manifest.plan.parameters, epochs: 0..<2)
        _ = try await MultiBatchLoader(shards: f.shards, configuration: config)
        config.padLengths = ["tokens": 4]
        let error = await #expect(throws: MBDataError.self) { try await MultiBatchLoader(shards: f.shards, configuration: config) }
        #expect(error?.message.contains("padLengths") == true, "\(String(describing: error))")
        config.padLengths = [:]
        config.seed = 9
        let seed = await #expect(throws: MBDataError.self) { try await MultiBatchLoader(shards: f.shards, configuration: config) }
        #expect(seed?.message.contains("written with seed 7, asked for seed 9") == true, "\(String(describing: seed))")
    }
}
