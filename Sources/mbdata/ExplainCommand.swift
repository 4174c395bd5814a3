import ArgumentParser
import Foundation
import MBData

struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show which samples a step of a plan held, or in which steps of an epoch a sample appears.",
        discussion: """
            The plan is named by its parameters over a dataset file (--batch-size, --seed, --world, \
            --split, --pad, --no-shuffle, --pack), or read from a shard directory's manifest (then \
            --dataset names the dataset it was made from, at the version it records). With --step N, \
            prints step N's samples — dataset, _id, key, rank and row, and for packed rows the segment, \
            its column, the offset within the sample and its length. With --key K or --id I, prints \
            every step and row of the epoch holding that sample.
            """)

    @Argument(help: "A dataset file, or a shard directory.")
    var source: String

    @Option(help: "The dataset a shard directory was made from (required with a shard directory).")
    var dataset: String?

    @Option(name: .customLong("batch-size"), help: "Global batch size G (rows of a packed plan).")
    var batchSize: Int?

    @Option(help: "Shuffle seed.")
    var seed: UInt64 = 0

    @Option(help: "Ranks sharing each global batch; must divide the batch size.")
    var world: Int = 1

    @Option(help: "Draw from this split only (default: every sample).")
    var split: String?

    @Flag(help: "The plan pads its last batch (default: drops the tail).")
    var pad = false

    @Flag(name: .customLong("no-shuffle"), help: "The plan keeps ingest order.")
    var noShuffle = false

    @OptionGroup var packing: PackingOptions

    @Option(help: "The epoch.")
    var epoch: Int = 0

    @Option(help: "The step (global batch index within the epoch) to explain.")
    var step: Int?

    @Option(help: "Only this rank's slice of the step.")
    var rank: Int?

    @Option(help: "Find the sample with this key (the schema's key field).")
    var key: String?

    @Option(help: "Find the sample with this _id.")
    var id: Int64?

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func validate() throws {
        guard [step != nil, key != nil, id != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("name exactly one of --step, --key and --id")
        }
        guard epoch >= 0, epoch <= Int(Int32.max) else { throw ValidationError("--epoch must be within 0…\(Int32.max), got \(epoch)") }
        if let step, step < 0 { throw ValidationError("--step must not be negative, got \(step)") }
        if isDirectory(source) {
            guard dataset != nil else { throw ValidationError("a shard directory needs --dataset, the dataset it was made from") }
            guard batchSize == nil, packing.pack == nil else {
                throw ValidationError("a shard directory's manifest names the plan: leave out --batch-size and --pack")
            }
        } else {
            guard let batchSize else { throw ValidationError("--batch-size is required with a dataset file") }
            guard (1...(1 << 24)).contains(batchSize) else { throw ValidationError("--batch-size must be within 1…\(1 << 24), got \(batchSize)") }
            guard world >= 1, batchSize % world == 0 else { throw ValidationError("--world \(world) must divide --batch-size \(batchSize)") }
        }
    }

    func run() async throws {
        try await reportingErrors {
            let lineage = try await makeLineage()
            if let step {
                let batch = try await lineage.batch(epoch: epoch, step: step, rank: rank)
                if json { try printJSON(batch, snakeCase: true) } else { print(LineageText.render(batch)) }
                return
            }
            let sampleID: Int64
            if let id {
                sampleID = id
            } else if let key, let found = try await lineage.id(key: key) {
                sampleID = found
            } else {
                throw MBDataError(.invalidArgument, "no sample has key \(key ?? "")", source: lineage.dataset.path, parameter: "key")
            }
            let entries = try await lineage.appearances(epoch: epoch, id: sampleID)
            let shown = rank.map { rank in entries.filter { $0.rank == rank } } ?? entries
            if json {
                try printJSON(SampleAppearances(id: sampleID, key: key, epoch: epoch, appearances: shown), snakeCase: true)
            } else {
                print(LineageText.render(shown, id: sampleID, epoch: epoch, packed: lineage.packed != nil))
            }
        }
    }

    private func makeLineage() async throws -> PlanLineage {
        if isDirectory(source), let dataset {
            let shards = try ShardSet(directory: source)
            return try await PlanLineage.make(shards: shards, dataset: try Dataset(path: dataset), name: Self.name(of: dataset))
        }
        let parameters = PlanParameters(
            seed: seed, batchSize: batchSize ?? 1, world: world, tail: pad ? .pad : .drop, split: split, shuffle: !noShuffle)
        return try await PlanLineage.make(
            dataset: try Dataset(path: source), name: Self.name(of: source), parameters: parameters, packing: try packing.spec())
    }

    /// A dataset file's name without its directory and extension, as entries show it.
    static func name(of path: String) -> String {
        ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    }
}

/// `explain --key/--id --json`: the sample and where it appears.
struct SampleAppearances: Encodable {
    var id: Int64
    var key: String?
    var epoch: Int
    var appearances: [LineageEntry]
}
