import Foundation
import Testing

@testable import MBData

/// `mbdata shard --pack`'s library side: packed batches written as shards with the packing
/// recorded in the manifest, read back byte for byte as the live batches.
@Suite struct PackedShardTests {
    @Test func packedShardsHoldTheLiveBatchesAndRecordThePacking() async throws {
        let (dir, dataset) = try await PackedPlanTests.dataset()
        let plan = try await dataset.packedPlan(PackedPlanTests.parameters(world: 2, tail: .drop), packing: PackedPlanTests.spec())
        let out = dir.path("shards")
        let manifest = try await ShardWriter.writePacked(dataset: dataset, plan: plan, epochs: 1..<3, to: out, targetShardBytes: 4096)
        let producer = try await PackedBatchProducer(dataset: dataset, plan: plan)
        let packing = try #require(manifest.packing)
        #expect(try packing.spec() == plan.spec)
        #expect(packing.batchesPerEpoch == [1, 2].map { producer.batchesPerEpoch(epoch: $0) })
        let statistics = producer.layout(epoch: 1).statistics + producer.layout(epoch: 2).statistics
        #expect(packing.statistics == statistics)
        #expect(packing.efficiency == statistics.efficiency && packing.efficiency > 0.5)
        #expect(packing.summary.contains(String(format: "efficiency %.2f%%", statistics.efficiency * 100)))
        #expect(manifest.dataset.fingerprint == plan.fingerprint)

        let shards = try ShardSet(directory: out)
        #expect(shards.manifest == manifest, "the manifest, packing included, reads back")
        #expect(shards.manifest.shards.count > 1)
        var expected: [PlanItem] = []
        for (epoch, batches) in zip(1..<3, packing.batchesPerEpoch) {
            for batch in 0..<batches { expected += (0..<2).map { PlanItem(epoch: epoch, batch: batch, rank: $0) } }
        }
        var read: [PlanItem] = []
        for (shard, entries) in shards.entries.enumerated() {
            for (index, entry) in entries.enumerated() {
                let item = PlanItem(epoch: Int(entry.epoch), batch: Int(entry.batch), rank: Int(entry.rank))
                read.append(item)
                #expect(try shards.batch(shard: shard, entry: index) == producer.collated(item).buffer)
            }
        }
        #expect(read == expected)
        let report = try await shards.verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.batchesChecked == expected.count)
    }

    @Test func anUnpackedManifestHasNoPackingMemberAndAPackedOneIsChecked() async throws {
        let (dir, dataset) = try await PackedPlanTests.dataset()
        let plan = try await dataset.packedPlan(PackedPlanTests.parameters(), packing: PackedPlanTests.spec())
        let out = dir.path("shards")
        var manifest = try await ShardWriter.writePacked(dataset: dataset, plan: plan, epochs: 0..<1, to: out)
        let encoded = String(decoding: try ShardManifest.encoder.encode(manifest), as: UTF8.self)
        #expect(encoded.contains("\"packing\"") && encoded.contains("\"batches_per_epoch\""))
        manifest.packing = nil
        #expect(!String(decoding: try ShardManifest.encoder.encode(manifest), as: UTF8.self).contains("\"packing\""))
        #expect(throws: MBDataError.self, "without packing the counts are an unpacked plan's, which they are not") { try manifest.validate() }
        manifest.packing = try ShardSet(directory: out).manifest.packing
        manifest.packing?.batchesPerEpoch[0] += 1
        #expect { try manifest.validate() } throws: { ($0 as? MBDataError)?.matches(.corruptData, "packing.batches_per_epoch") == true }
    }

    @Test func aPackedSetServesNoUnpackedPlan() async throws {
        let (dir, dataset) = try await PackedPlanTests.dataset()
        let plan = try await dataset.packedPlan(PackedPlanTests.parameters(), packing: PackedPlanTests.spec())
        let out = dir.path("shards")
        _ = try await ShardWriter.writePacked(dataset: dataset, plan: plan, epochs: 0..<1, to: out)
        let shards = try ShardSet(directory: out)
        // The same dataset, seed and batch size unpacked: `serve --spool`, `verify --dataset` and `shard`'s
        // up-to-date check ask this, and must not take packed rows for the plan's batches.
        #expect { try shards.check(matches: plan.base) } throws: { error in
            (error as? MBDataError)?.parameter == "packing" && "\(error)".contains("not packed")
        }
        #expect(!shards.manifest.serves(ShardRequirement(plan: plan.base, epochs: 0..<1)))
    }
}
