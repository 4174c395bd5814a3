import Foundation
import Testing

@testable import MBData

@Suite struct PlanTests {
    @Test func permutationIsABijectionForManySizes() {
        for count in [1, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            for seed in [0, 1, 42] as [UInt64] {
                let permutation = IndexPermutation(count: count, seed: seed, epoch: 0)
                let values = (0..<count).map(permutation.index(at:))
                #expect(Set(values).count == count, "n=\(count) seed=\(seed)")
                #expect(values.allSatisfy { (0..<count).contains($0) })
            }
        }
    }

    static let cases: [(n: Int, batch: Int, worlds: [Int])] = [
        (1, 1, [1]), (7, 2, [1, 2]), (100, 12, [1, 2, 3, 4, 6, 12]), (1003, 64, [1, 2, 4, 8]), (1000, 1000, [1, 10]), (50, 64, [1, 4]),
    ]

    @Test(arguments: TailPolicy.allCases)
    func everySampleOncePerEpochEqualRanksAndElasticWorlds(tail: TailPolicy) throws {
        for (n, batch, worlds) in Self.cases {
            let single = try EpochPlan(parameters: PlanParameters(seed: 9, batchSize: batch, world: 1, tail: tail), sampleCount: n)
            for epoch in 0..<2 {
                let reference = (0..<single.batchesPerEpoch).flatMap { single.indices(epoch: epoch, batch: $0) }
                let real = reference.compactMap { $0 }
                #expect(Set(real).count == real.count, "no sample twice: n=\(n) G=\(batch)")
                switch tail {
                case .drop:
                    #expect(single.batchesPerEpoch == n / batch)
                    #expect(real.count == n - n % batch)
                    #expect(single.droppedPerEpoch == n % batch)
                case .pad:
                    #expect(single.batchesPerEpoch == (n + batch - 1) / batch)
                    #expect(Set(real) == Set(0..<n), "pad keeps every sample")
                    #expect(reference.count - real.count == single.batchesPerEpoch * batch - n, "padding rows only fill the tail")
                }
                for world in worlds {
                    let plan = try EpochPlan(parameters: PlanParameters(seed: 9, batchSize: batch, world: world, tail: tail), sampleCount: n)
                    #expect(plan.batchesPerEpoch == single.batchesPerEpoch, "every rank gets the same number of batches")
                    var concatenated: [Int?] = []
                    for k in 0..<plan.batchesPerEpoch {
                        for rank in 0..<world {
                            let slice = plan.indices(epoch: epoch, batch: k, rank: rank)
                            #expect(slice.count == batch / world)
                            concatenated += slice
                        }
                    }
                    #expect(concatenated == reference, "the sample stream does not depend on world (n=\(n) G=\(batch) W=\(world))")
                }
            }
        }
    }

    @Test func sameSeedSameOrderOtherEpochOrSeedOtherOrder() throws {
        let plan = try EpochPlan(parameters: PlanParameters(seed: 7, batchSize: 10), sampleCount: 500)
        let again = try EpochPlan(parameters: PlanParameters(seed: 7, batchSize: 10), sampleCount: 500)
        let other = try EpochPlan(parameters: PlanParameters(seed: 8, batchSize: 10), sampleCount: 500)
        func order(_ p: EpochPlan, _ epoch: Int) -> [Int?] { (0..<p.batchesPerEpoch).flatMap { p.indices(epoch: epoch, batch: $0) } }
        #expect(order(plan, 0) == order(again, 0))
        #expect(order(plan, 0) != order(plan, 1))
        #expect(order(plan, 0) != order(other, 0))
        let unshuffled = try EpochPlan(parameters: PlanParameters(seed: 7, batchSize: 10, shuffle: false), sampleCount: 500)
        #expect(order(unshuffled, 3) == (0..<500).map { $0 })
    }

    /// Shuffle quality: over 2,000 seeds, the sample at each of the first 10 positions falls
    /// into each tenth of the index range equally often. Chi-square with 9 degrees of
    /// freedom per position must stay under 27.88 (p = 0.001), and the mean displacement
    /// |π(i) − i| over 20 seeds must be within 3% of n/3, its value for a uniform permutation.
    @Test func shuffleIsUniformByChiSquareAndDisplacement() {
        let n = 1000
        let seeds = 2000
        for position in 0..<10 {
            var bins = [Int](repeating: 0, count: 10)
            for seed in 0..<seeds {
                bins[IndexPermutation(count: n, seed: UInt64(seed), epoch: 0).index(at: position) * 10 / n] += 1
            }
            let expected = Double(seeds) / 10
            let chiSquare = bins.reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
            #expect(chiSquare < 27.88, "position \(position): chi-square \(chiSquare), bins \(bins)")
        }
        var total = 0.0
        for seed in 0..<20 as Range<UInt64> {
            let permutation = IndexPermutation(count: n, seed: seed, epoch: 3)
            total += Double((0..<n).reduce(0) { $0 + abs(permutation.index(at: $1) - $1) }) / Double(n)
        }
        // One permutation's mean displacement has a standard deviation of about 7.5 here;
        // over 20 seeds about 1.7, so 3% (10) is a 6-sigma bound.
        let displacement = total / 20
        #expect(abs(displacement - Double(n) / 3) < 0.03 * Double(n) / 3, "mean displacement \(displacement)")
    }

    @Test func invalidParametersAreRefused() {
        #expect(throws: MBDataError.self) { try EpochPlan(parameters: PlanParameters(batchSize: 10, world: 3), sampleCount: 100) }
        #expect(throws: MBDataError.self) { try EpochPlan(parameters: PlanParameters(batchSize: 0), sampleCount: 100) }
    }

    @Test func aPlanIsPinnedToItsDatasetVersion() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let first = try dir.write("a.jsonl", (0..<30).map { "{\"x\": \($0)}" }.joined(separator: "\n"))
        let keyless = try schema(#"{"name": "k", "fields": [{"name": "x", "dtype": "int64"}]}"#)
        try await ingest(dataset, [first], schema: keyless)
        let plan = try await dataset.plan(PlanParameters(seed: 1, batchSize: 4))
        let more = try dir.write("b.jsonl", (30..<50).map { "{\"x\": \($0)}" }.joined(separator: "\n"))
        try await ingest(dataset, [more])
        let pinned = try await dataset.plan(PlanParameters(seed: 1, batchSize: 4), version: plan.datasetVersion)
        #expect(pinned.ids == plan.ids)
        #expect(pinned.fingerprint == plan.fingerprint)
        let current = try await dataset.plan(PlanParameters(seed: 1, batchSize: 4))
        #expect(current.ids.count == 50)
        #expect(current.fingerprint != plan.fingerprint)
        await #expect(throws: MBDataError.self) { try await dataset.plan(PlanParameters(seed: 1, batchSize: 4, split: "nope")) }
    }
}
