import Foundation
import Testing

@testable import MBData

@Suite struct MixtureTests {
    /// A random mixture: 1–5 sources of 1–400 samples, relative or absolute weights.
    static func randomMixture(_ random: inout SeededGenerator, relative: Bool) throws -> MixturePlan {
        let sourceCount = Int.random(in: 1...5, using: &random)
        let sources = (0..<sourceCount).map { index in
            let size = Int.random(in: 1...400, using: &random)
            let weight: MixtureWeight =
                relative
                ? .proportion(Double.random(in: 0.01...1, using: &random))
                : Bool.random(using: &random)
                    ? .repeat(Double.random(in: 0.05...3.5, using: &random)) : .choose(Int.random(in: 1...900, using: &random))
            return MixtureSource(name: "s\(index)", sampleCount: size, fingerprint: "v\(index)", weight: weight)
        }
        let epochSize = relative && Bool.random(using: &random) ? Int.random(in: 1...3000, using: &random) : nil
        return try MixturePlan(sources: sources, epochSize: epochSize, seed: random.next())
    }

    static func mixtures(count: Int, seed: UInt64) throws -> [MixturePlan] {
        var random = SeededGenerator(seed: seed)
        return try (0..<count).compactMap { index -> MixturePlan? in
            do {
                return try randomMixture(&random, relative: index % 2 == 0)
            } catch let error as MBDataError where error.code == .invalidArgument {
                return nil  // tiny repeats can round every count to 0
            }
        }
    }

    @Test func eachSourceContributesItsExactCountEveryEpoch() throws {
        for plan in try Self.mixtures(count: 60, seed: 1) {
            #expect(plan.counts.reduce(0, +) == plan.epochSize)
            let shares = plan.sources.map { source -> Double in
                switch source.weight {
                case .proportion(let share): share
                case .repeat(let passes): passes * Double(source.sampleCount)
                case .choose(let count): Double(count)
                }
            }
            let sum = shares.reduce(0, +)
            for (index, source) in plan.sources.enumerated() {
                switch source.weight {
                case .proportion:
                    #expect(abs(Double(plan.counts[index]) - Double(plan.epochSize) * shares[index] / sum) < 1, "largest remainder is within 1 of the quota")
                case .repeat(let passes): #expect(plan.counts[index] == Int((passes * Double(source.sampleCount)).rounded()))
                case .choose(let count): #expect(plan.counts[index] == count)
                }
            }
            for epoch in 0..<2 {
                var seen = [Int](repeating: 0, count: plan.sources.count)
                for draw in plan.draws(epoch: epoch, positions: 0..<plan.epochSize) {
                    seen[draw.source] += 1
                    #expect((0..<plan.sources[draw.source].sampleCount).contains(draw.index))
                }
                #expect(seen == plan.counts, "epoch \(epoch): every source its exact count")
            }
        }
    }

    @Test func largestRemainderBreaksTiesTowardTheLowerIndex() {
        #expect(MixturePlan.largestRemainder(total: 10, shares: [1, 1, 1]) == [4, 3, 3])
        #expect(MixturePlan.largestRemainder(total: 100, shares: [0.6, 0.25, 0.15]) == [60, 25, 15])
        #expect(MixturePlan.largestRemainder(total: 7, shares: [0.5, 0.3, 0.2]) == [4, 2, 1])
    }

    @Test func aSourceNeverRepeatsASampleBeforeShowingAllOfIt() throws {
        for plan in try Self.mixtures(count: 40, seed: 2) {
            var streams = [[MixtureDraw]](repeating: [], count: plan.sources.count)
            for epoch in 0..<3 {
                for draw in plan.draws(epoch: epoch, positions: 0..<plan.epochSize) { streams[draw.source].append(draw) }
            }
            for (index, stream) in streams.enumerated() {
                let size = plan.sources[index].sampleCount
                for start in stride(from: 0, to: stream.count, by: size) {
                    let pass = stream[start..<min(start + size, stream.count)]
                    #expect(Set(pass.map(\.index)).count == pass.count, "source \(index): pass \(start / size) repeats a sample")
                    #expect(pass.allSatisfy { $0.pass == start / size })
                }
            }
        }
    }

    @Test func chooseBelowWalksOnAcrossEpochsAndRepeatAboveShowsWholePasses() throws {
        let plan = try MixturePlan(
            sources: [
                MixtureSource(name: "big", sampleCount: 10, fingerprint: "a", weight: .choose(4)),
                MixtureSource(name: "small", sampleCount: 7, fingerprint: "b", weight: .repeat(2.5)),
            ], seed: 5)
        #expect(plan.counts == [4, 18] && plan.epochSize == 22)
        func stream(_ source: Int, epochs: Range<Int>) -> [Int] {
            epochs.flatMap { plan.draws(epoch: $0, positions: 0..<plan.epochSize) }.filter { $0.source == source }.map(\.index)
        }
        let big = stream(0, epochs: 0..<5)
        #expect(big.count == 20)
        #expect(Set(big[0..<10]) == Set(0..<10) && Set(big[10..<20]) == Set(0..<10), "five epochs of 4 show every sample twice")
        #expect(Set(big[0..<4]).count == 4 && Set(big[4..<8]).isDisjoint(with: big[0..<4]), "the next epoch shows new samples")
        let small = stream(1, epochs: 0..<1)
        #expect(Set(small[0..<7]) == Set(0..<7) && Set(small[7..<14]) == Set(0..<7) && Set(small[14..<18]).count == 4)
        #expect(small[0..<7] != small[7..<14], "a fresh permutation per pass")
    }

    @Test func drawsAreSpreadEvenlyNotInRuns() throws {
        var random = SeededGenerator(seed: 3)
        for _ in 0..<80 {
            let counts = (0..<Int.random(in: 1...6, using: &random)).map { _ in
                Bool.random(using: &random) ? Int.random(in: 0...20, using: &random) : Int.random(in: 0...700, using: &random)
            }
            guard counts.contains(where: { $0 > 0 }) else { continue }
            let schedule = MixtureSchedule(counts: counts)
            let active = counts.filter { $0 > 0 }.count
            var positions = [[Int]](repeating: [], count: counts.count)
            for (position, slot) in schedule.slots(0..<schedule.total).enumerated() {
                #expect(slot.draw == positions[slot.source].count, "a source's draws come in order")
                positions[slot.source].append(position)
            }
            for (source, list) in positions.enumerated() where !list.isEmpty {
                let bound = (schedule.total + counts[source] - 1) / counts[source] + active - 2
                let wrap = schedule.total - list.last! + list.first!
                let gaps = zip(list.dropFirst(), list).map { $0 - $1 } + [wrap]
                #expect(gaps.max()! <= max(bound, 1), "counts \(counts): source \(source) gap \(gaps.max()!) > \(bound)")
            }
        }
    }

    @Test func seekingEqualsIteratingAndPositionInvertsIt() throws {
        for plan in try Self.mixtures(count: 30, seed: 4) {
            let epoch = 3
            let all = plan.draws(epoch: epoch, positions: 0..<plan.epochSize)
            let slots = plan.schedule.slots(0..<plan.epochSize)
            for position in 0..<plan.epochSize {
                #expect(plan.draw(epoch: epoch, position: position) == all[position])
                #expect(plan.schedule.position(of: slots[position]) == position)
            }
            var random = SeededGenerator(seed: UInt64(plan.epochSize))
            for _ in 0..<10 {
                let start = Int.random(in: 0..<plan.epochSize, using: &random)
                let end = Int.random(in: start...plan.epochSize, using: &random)
                #expect(plan.draws(epoch: epoch, positions: start..<end) == Array(all[start..<end]))
            }
        }
    }

    @Test func everyPositionOfASampleIsFoundFromTheSample() throws {
        for plan in try Self.mixtures(count: 20, seed: 8) {
            let epoch = 2
            var expected: [MixtureDraw: [Int]] = [:]
            for (position, draw) in plan.draws(epoch: epoch, positions: 0..<plan.epochSize).enumerated() {
                expected[MixtureDraw(source: draw.source, index: draw.index, pass: 0), default: []].append(position)
            }
            for (source, description) in plan.sources.enumerated() {
                for index in 0..<description.sampleCount {
                    let found = plan.positions(ofSample: index, source: source, epoch: epoch)
                    #expect(found == expected[MixtureDraw(source: source, index: index, pass: 0)] ?? [], "source \(source) sample \(index)")
                }
            }
        }
        for count in [1, 2, 5, 17, 1000, 4097] {
            let permutation = IndexPermutation(count: count, seed: 3, epoch: 1)
            #expect((0..<count).allSatisfy { permutation.position(of: permutation.index(at: $0)) == $0 })
        }
    }

    @Test func hugeEpochsSeekWithoutOverflow() throws {
        let plan = try MixturePlan(
            sources: [
                MixtureSource(name: "web", sampleCount: 3_000_000_000, fingerprint: "w", weight: .proportion(0.6)),
                MixtureSource(name: "code", sampleCount: 700_000_000, fingerprint: "c", weight: .proportion(0.25)),
                MixtureSource(name: "books", sampleCount: 7, fingerprint: "b", weight: .proportion(0.15)),
            ], epochSize: 1_000_000_000_000, seed: 7)
        #expect(plan.counts == [600_000_000_000, 250_000_000_000, 150_000_000_000])
        for position in [0, 1, 999_999_999_999, 123_456_789_012, 500_000_000_000] {
            let slot = plan.schedule.slot(at: position)
            #expect(plan.schedule.position(of: slot) == position)
            let draw = plan.draw(epoch: 2, position: position)
            #expect(plan.draws(epoch: 2, positions: position..<min(position + 3, plan.epochSize)).first == draw)
            if draw.source < 2 {  // books shows each of its 7 samples 2·10¹⁰ times an epoch
                #expect(plan.positions(ofSample: draw.index, source: draw.source, epoch: 2).contains(position))
            }
        }
    }

    @Test(arguments: TailPolicy.allCases)
    func theGlobalStreamIsTheSameForEveryWorldSize(tail: TailPolicy) throws {
        for plan in try Self.mixtures(count: 10, seed: 6) {
            let reference = plan.draws(epoch: 1, positions: 0..<plan.epochSize)
            var single: [MixtureDraw?] = []
            for world in [1, 2, 4, 8] {
                let batching = try plan.batchPlan(PlanParameters(seed: 99, batchSize: 8, world: world, tail: tail))
                var stream: [MixtureDraw?] = []
                for batch in 0..<batching.batchesPerEpoch {
                    for rank in 0..<world { stream += plan.draws(epoch: 1, batch: batch, rank: rank, batching: batching) }
                }
                if world == 1 { single = stream } else { #expect(stream == single, "world \(world)") }
                #expect(stream.compactMap { $0 } == Array(reference.prefix(stream.compactMap { $0 }.count)))
                #expect(stream.count == batching.batchesPerEpoch * 8)
            }
        }
    }

    @Test func thePlanIsAPureFunctionOfItsInputsAndTheFingerprintNamesThemAll() throws {
        let sources = [
            MixtureSource(name: "web", sampleCount: 300, fingerprint: "w1", weight: .proportion(0.6)),
            MixtureSource(name: "code", sampleCount: 70, fingerprint: "c1", weight: .proportion(0.4)),
        ]
        let plan = try MixturePlan(sources: sources, epochSize: 500, seed: 7)
        let again = try MixturePlan(sources: sources, epochSize: 500, seed: 7)
        #expect(plan.draws(epoch: 4, positions: 0..<500) == again.draws(epoch: 4, positions: 0..<500) && plan.fingerprint == again.fingerprint)
        #expect(plan.draws(epoch: 4, positions: 0..<500) != plan.draws(epoch: 5, positions: 0..<500))
        var variants = [
            try MixturePlan(sources: sources, epochSize: 500, seed: 8),
            try MixturePlan(sources: sources, epochSize: 501, seed: 7),
            try MixturePlan(sources: Array(sources.reversed()), epochSize: 500, seed: 7),
        ]
        for change in 0..<4 {
            var changed = sources
            switch change {
            case 0: changed[1].fingerprint = "c2"
            case 1: changed[1].weight = .proportion(0.41)
            case 2: changed[1].sampleCount = 71
            default: changed[1].name = "code2"
            }
            variants.append(try MixturePlan(sources: changed, epochSize: 500, seed: 7))
        }
        let fingerprints = Set(variants.map(\.fingerprint) + [plan.fingerprint])
        #expect(fingerprints.count == variants.count + 1, "every input changes the fingerprint")
        #expect(try MixturePlan(sources: sources, epochSize: 500, seed: 8).draws(epoch: 0, positions: 0..<500) != plan.draws(epoch: 0, positions: 0..<500))
    }

    @Test func invalidMixturesAreRefused() {
        let a = MixtureSource(name: "a", sampleCount: 10, fingerprint: "a", weight: .proportion(0.5))
        let b = MixtureSource(name: "b", sampleCount: 10, fingerprint: "b", weight: .repeat(1))
        let refused: [([MixtureSource], Int?)] = [
            ([], nil), ([a, b], nil), ([a, a], nil),
            ([MixtureSource(name: "z", sampleCount: 0, fingerprint: "z")], nil),
            ([MixtureSource(name: "z", sampleCount: 5, fingerprint: "z", weight: .proportion(0))], nil),
            ([MixtureSource(name: "z", sampleCount: 5, fingerprint: "z", weight: .repeat(.nan))], nil),
            ([MixtureSource(name: "z", sampleCount: 5, fingerprint: "z", weight: .choose(-1))], nil),
            ([b], 11), ([a], 0),
            ([MixtureSource(name: "z", sampleCount: 5, fingerprint: "z", weight: .repeat(0.01))], nil),
            // Each at the limit, together far past Int's range: refused, never an overflow.
            ((0..<4096).map { MixtureSource(name: "s\($0)", sampleCount: 5, fingerprint: "s", weight: .choose(MixturePlan.maxEpochSize)) }, nil),
        ]
        for (sources, epochSize) in refused {
            #expect(throws: MBDataError.self) { try MixturePlan(sources: sources, epochSize: epochSize, seed: 0) }
        }
        #expect((try? MixturePlan(sources: [b], epochSize: 10, seed: 0))?.epochSize == 10, "an epoch size equal to the absolute total is accepted")
        #expect((try? MixturePlan(sources: [a], seed: 0))?.epochSize == 10, "proportions default to the sources' total")
    }
}
