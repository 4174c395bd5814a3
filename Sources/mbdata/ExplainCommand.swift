import ArgumentParser
import Foundation
import MBData

struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show which samples a step of a plan held, or in which steps of an epoch a sample appears.",
        discussion: """
            The plan is named by its parameters over a dataset file (--batch-size, --seed, --world, \
            --split, --pad, --no-shuffle, --pack), over a mixture of datasets (--mix PATH=WEIGHT …, \
            --epoch-size, perhaps --pack, as `mbdata shard --mix` takes them), or read from a shard directory's \
            manifest (then --dataset names the dataset it was made from, at the version it records; \
            for a mixture's shards, --dataset once per source). With --step N, prints step N's \
            samples — dataset, _id, key, rank and row, and for packed rows the segment, its column, \
            the offset within the sample and its length; a mixture's rows also show their source's \
            pass (0 for a sample's first showing, 1 for its first repeat, …) and their position in \
            the mixture's epoch. With --key K or --id I, prints every step and row of the epoch \
            holding that sample (a mixture's: of the source --source names).
            """)

    @Argument(help: "A dataset file, or a shard directory (none with --mix).")
    var path: String?

    @Option(help: "The dataset a shard directory was made from (required with a shard directory; once per source of a mixture's).")
    var dataset: [String] = []

    @Option(name: .customLong("batch-size"), help: "Global batch size G (rows of a packed plan).")
    var batchSize: Int?

    @OptionGroup var planOptions: PlanOptions

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

    @Option(help: "A mixture's source (its name, as batches list it) that --key or --id names a sample of.")
    var source: String?

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func validate() throws {
        guard [step != nil, key != nil, id != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("name exactly one of --step, --key and --id")
        }
        guard epoch >= 0, epoch <= Int(Int32.max) else { throw ValidationError("--epoch must be within 0…\(Int32.max), got \(epoch)") }
        if let step, step < 0 { throw ValidationError("--step must not be negative, got \(step)") }
        let mixed = !planOptions.mix.isEmpty
        guard (path == nil) == mixed else { throw ValidationError("name a dataset file, a shard directory or a --mix of datasets") }
        if let path, isDirectory(path) {
            guard !dataset.isEmpty else { throw ValidationError("a shard directory needs --dataset, the dataset it was made from") }
            guard batchSize == nil, packing.pack == nil else {
                throw ValidationError("a shard directory's manifest names the plan: leave out --batch-size and --pack")
            }
        } else {
            guard dataset.isEmpty else { throw ValidationError("--dataset applies to a shard directory only") }
            guard let batchSize else { throw ValidationError("--batch-size is required with a dataset file or --mix") }
            guard (1...(1 << 24)).contains(batchSize) else { throw ValidationError("--batch-size must be within 1…\(1 << 24), got \(batchSize)") }
            let world = planOptions.world
            guard world >= 1, batchSize % world == 0 else { throw ValidationError("--world \(world) must divide --batch-size \(batchSize)") }
        }
    }

    /// The library's refusal of how a sample was named, with the flags that name one.
    private static func namingFlags<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch var error as MBDataError where error.parameter == "source" || error.parameter == "key" {
            error.message += " (on the command line: --source NAME for a mixture's source, --key KEY or --id ID for the sample)"
            throw error
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
            let sourceIndex = try await Self.namingFlags { try lineage.sourceIndex(named: source) }
            let sampleID: Int64
            if let id {
                sampleID = id
            } else if let key, let found = try await Self.namingFlags({ try await lineage.id(key: key, source: sourceIndex) }) {
                sampleID = found
            } else {
                throw MBDataError(
                    .invalidArgument, "no sample has key \(key ?? "")", source: lineage.sources[sourceIndex].dataset.path, parameter: "key")
            }
            let entries = try await lineage.appearances(epoch: epoch, id: sampleID, source: sourceIndex)
            let shown = rank.map { rank in entries.filter { $0.rank == rank } } ?? entries
            if json {
                try printJSON(SampleAppearances(id: sampleID, key: key, epoch: epoch, appearances: shown), snakeCase: true)
            } else {
                let dataset = lineage.mixture == nil ? nil : lineage.sources[sourceIndex].name
                print(LineageText.render(shown, id: sampleID, dataset: dataset, epoch: epoch, packed: lineage.isPacked))
            }
        }
    }

    private func makeLineage() async throws -> PlanLineage {
        let parameters = planOptions.parameters(batchSize: batchSize ?? 1)
        guard let path else {
            return try await PlanLineage.make(
                mixture: planOptions.mixtureSources().components, epochSize: planOptions.epochSize, parameters: parameters, packing: try packing.spec())
        }
        if isDirectory(path) {
            let shards = try ShardSet(directory: path)
            if shards.manifest.mixture != nil {
                return try await PlanLineage.make(shards: shards, datasets: dataset.map { try Dataset(path: $0) })
            }
            guard dataset.count == 1 else {
                throw MBDataError(.invalidArgument, "the shards hold one dataset's batches: name it with one --dataset", parameter: "dataset")
            }
            return try await PlanLineage.make(shards: shards, dataset: try Dataset(path: dataset[0]), name: Dataset.name(ofPath: dataset[0]))
        }
        return try await PlanLineage.make(
            dataset: try Dataset(path: path), name: Dataset.name(ofPath: path), parameters: parameters, packing: try packing.spec())
    }
}

/// `explain --key/--id --json`: the sample and where it appears.
struct SampleAppearances: Encodable {
    var id: Int64
    var key: String?
    var epoch: Int
    var appearances: [LineageEntry]
}
