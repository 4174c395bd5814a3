import ArgumentParser
import MBData

/// `--seed`, `--world`, `--split`, `--pad`, `--no-shuffle`, `--mix`, `--epoch-size`: the plan
/// options `shard` and `explain` share, so both name a plan the same way.
struct PlanOptions: ParsableArguments {
    @Option(help: "Shuffle seed.")
    var seed: UInt64 = 0

    @Option(help: "Ranks sharing each global batch; must divide the batch size.")
    var world: Int = 1

    @Option(help: "Draw from this split only (default: every sample).")
    var split: String?

    @Flag(help: "Pad the last batch with rows flagged invalid in _valid (default: drop the tail shorter than a batch).")
    var pad = false

    @Flag(name: .customLong("no-shuffle"), help: "Keep ingest order.")
    var noShuffle = false

    @Option(
        parsing: .upToNextOption,
        help: "PATH=WEIGHT …: a mixture of datasets, WEIGHT a proportion (0.6), repeat:R or choose:N.")
    var mix: [String] = []

    @Option(name: .customLong("epoch-size"), help: "Draws per mixture epoch (proportion weights; default: the datasets' sizes summed).")
    var epochSize: Int?

    func validate() throws {
        if !mix.isEmpty {
            _ = try mixture()
            if noShuffle { throw ValidationError("a mixture always shuffles its sources: --no-shuffle does not apply to --mix") }
        } else if epochSize != nil {
            throw ValidationError("--epoch-size applies to --mix only")
        }
        if let epochSize, !(1...MixturePlan.maxEpochSize).contains(epochSize) {
            throw ValidationError("--epoch-size must be within 1…\(MixturePlan.maxEpochSize), got \(epochSize)")
        }
    }

    /// The plan parameters these options and `batchSize` name.
    func parameters(batchSize: Int) -> PlanParameters {
        PlanParameters(seed: seed, batchSize: batchSize, world: world, tail: pad ? .pad : .drop, split: split, shuffle: !noShuffle)
    }

    /// `--mix` as (path, weight) pairs, in order (``MixtureItems/Syntax/commandLine``).
    func mixture() throws -> [(path: String, weight: MixtureWeight)] {
        do {
            return try MixtureItems.parse(mix, syntax: .commandLine).map { (path: $0.name, weight: $0.weight) }
        } catch let error as MBDataError {
            throw ValidationError("--mix: \(error.message); expected PATH=WEIGHT with WEIGHT \(MixtureItems.expectedWeight)")
        }
    }

    /// `--mix`'s datasets, opened, in order, and the mixture's components over them.
    func mixtureSources() throws -> (datasets: [Dataset], components: [MixtureComponent]) {
        let items = try mixture()
        let datasets = try items.map { try Dataset(path: $0.path) }
        return (datasets, zip(datasets, items).map { MixtureComponent(dataset: $0, weight: $1.weight) })
    }
}
