import ArgumentParser
import Foundation
import MBData

struct ShardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Write a plan's batches as LZ4-compressed safetensors frames into shard files.",
        discussion: """
            Epochs E…E+N-1 of the plan (seed, global batch size, world, tail policy, split) over the \
            dataset's current version. Frames are ordered by epoch, batch, rank. Re-running with \
            the same dataset version and plan finds the shards up to date.

            --mix PATH=WEIGHT … writes a mixture of datasets instead (same fields in each): WEIGHT \
            is a proportion (0.6; the epoch has --epoch-size draws, by default the datasets' \
            sizes summed), repeat:R (R passes over the dataset per epoch) or choose:N (N draws \
            per epoch); proportions and repeat/choose do not mix. A source is named by its file's \
            base name (web for web.mbdb); batches carry _source, its index in --mix order. With \
            --pack the mixture epoch's draws are packed into rows, and _source and _id are per segment.
            """)

    @Argument(help: "The dataset file (or --mix).")
    var dataset: String?

    @Option(help: "The shard directory (created; must be empty or hold shards).")
    var out: String

    @Option(name: .customLong("batch-size"), help: "Global batch size G (samples per step across all ranks).")
    var batchSize: Int

    @Option(help: "Number of epochs.")
    var epochs: Int = 1

    @Option(name: .customLong("first-epoch"), help: "The first epoch's number.")
    var firstEpoch: Int = 0

    @OptionGroup var planOptions: PlanOptions

    @Flag(name: .customLong("drop-last"), help: "Drop the tail shorter than a global batch (default).")
    var dropLast = false

    @Option(name: .customLong("pad-to"), help: "FIELD=LENGTH: pad a variable-length field to a fixed length (repeatable).")
    var padTo: [String] = []

    @OptionGroup var packing: PackingOptions

    @Option(help: "LZ4 level: 0 fast (default), 1–12 high compression.")
    var level: Int32 = 0

    @Option(help: "Prefetch depth: batches held ahead of the writer.")
    var depth: Int = 8

    @Option(name: .customLong("shard-mb"), help: "Target shard file size in MB.")
    var shardMB: Int = 256

    /// Documented ranges of the options: each value past them is refused with exit 64 before any work.
    enum Limits {
        static let batchSize = 1...(1 << 24)
        static let epochs = 1...1_000_000
        static let firstEpoch = 0...(1 << 31)
        static let level: ClosedRange<Int32> = 0...12
        static let depth = 1...1024
        static let shardMB = 1...(1 << 20)
        static let padLength = 1...RecordLimits.maxSequenceLength
    }

    func validate() throws {
        if dropLast && planOptions.pad { throw ValidationError("--drop-last and --pad exclude each other") }
        if (dataset == nil) == planOptions.mix.isEmpty { throw ValidationError("name one dataset file or a --mix of datasets") }
        if packing.pack != nil, !padTo.isEmpty { throw ValidationError("--pack and --pad-to exclude each other") }
        func check<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ flag: String) throws {
            guard range.contains(value) else {
                throw ValidationError("\(flag) must be within \(range.lowerBound)…\(range.upperBound), got \(value)")
            }
        }
        try check(batchSize, Limits.batchSize, "--batch-size")
        try check(planOptions.world, 1...batchSize, "--world")
        if batchSize % planOptions.world != 0 { throw ValidationError("--world \(planOptions.world) must divide --batch-size \(batchSize)") }
        try check(epochs, Limits.epochs, "--epochs")
        try check(firstEpoch, Limits.firstEpoch, "--first-epoch")
        try check(level, Limits.level, "--level")
        try check(depth, Limits.depth, "--depth")
        try check(shardMB, Limits.shardMB, "--shard-mb")
        for item in padTo {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let length = Int(parts[1]) else {
                throw ValidationError("--pad-to expects FIELD=LENGTH, got \(item)")
            }
            try check(length, Limits.padLength, "--pad-to length")
        }
    }

    func run() async throws {
        AllocatorTuning.applyForBatchWorkloads()
        try await reportingErrors {
            guard let dataset else { return try await writeMixture() }
            let store = try Dataset(path: dataset)
            guard let schema = try await store.schema() else {
                throw MBDataError(.invalidDataset, "the dataset is empty: nothing ingested yet", source: dataset)
            }
            let parameters = planOptions.parameters(batchSize: batchSize)
            let epochRange = firstEpoch..<(firstEpoch + epochs)
            if let spec = try packing.spec() {
                return try await writePacked(store, try await store.packedPlan(parameters, packing: spec), epochs: epochRange)
            }
            let plan = try await store.plan(parameters)
            let configuration = try prefetchConfiguration()
            if let existing = ShardWriter.upToDate(out, plan: plan, epochs: epochRange, configuration: configuration) {
                printError("\(out): up to date (dataset version \(plan.datasetVersion), \(existing.totals.batches) batches)")
                return
            }
            let prefetcher = try await Prefetcher(dataset: store, plan: plan, epochs: epochRange, configuration: configuration)
            let line = ProgressLine()
            let started = Date()
            let manifest = try await ShardWriter.write(prefetcher, schema: schema, to: out, targetShardBytes: shardMB * 1_000_000) { p in
                line.show(
                    label: out, done: p.batches, total: p.totalBatches, unit: "batches",
                    detail: String(format: "%.1f MB in, %.1f MB out", Double(p.uncompressedBytes) / 1e6, Double(p.compressedBytes) / 1e6),
                    elapsed: p.elapsedSeconds)
            }
            line.finish()
            let seconds = Date().timeIntervalSince(started)
            let totals = manifest.totals
            var summary = "\(out): \(totals.batches) batches, \(totals.samples) samples in \(manifest.shards.count) shards; "
            summary += String(
                format: "%.1f MB → %.1f MB (ratio %.2f) in %.2f s (%.0f batches/s, %.1f MB/s); dataset version %d",
                Double(totals.uncompressedBytes) / 1e6, Double(totals.compressedBytes) / 1e6,
                Double(totals.uncompressedBytes) / Double(max(totals.compressedBytes, 1)), seconds, Double(totals.batches) / seconds,
                Double(totals.uncompressedBytes) / 1e6 / seconds, plan.datasetVersion)
            if plan.plan.droppedPerEpoch > 0 { summary += "\n  note: \(plan.plan.droppedPerEpoch) samples dropped per epoch (tail shorter than a batch; --pad keeps them)" }
            printError(summary)
        }
    }

    /// The prefetch settings of `--depth`, `--level` and `--pad-to`.
    private func prefetchConfiguration() throws -> PrefetchConfiguration {
        var configuration = PrefetchConfiguration()
        configuration.depth = depth
        configuration.compressionLevel = level
        for item in padTo {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let length = Int(parts[1]) else {
                throw MBDataError(.invalidArgument, "--pad-to expects FIELD=LENGTH, got \(item)")
            }
            configuration.padLengths[String(parts[0])] = length
        }
        return configuration
    }

    /// Writes the `--mix` plan's shards and prints its sources' draws.
    private func writeMixture() async throws {
        let (datasets, components) = try planOptions.mixtureSources()
        let parameters = planOptions.parameters(batchSize: batchSize)
        let epochRange = firstEpoch..<(firstEpoch + epochs)
        if let spec = try packing.spec() {
            let plan = try await PackedMixturePlan.resolve(components, epochSize: planOptions.epochSize, parameters: parameters, packing: spec)
            return try await writePacked("mixture of \(plan.base.names.joined(separator: ", "))") { progress in
                try await ShardWriter.writePackedMixture(
                    plan: plan, datasets: datasets, epochs: epochRange, compressionLevel: level, to: out, targetShardBytes: shardMB * 1_000_000,
                    progress: progress)
            }
        }
        let plan = try await MixtureBatchPlan.resolve(components, epochSize: planOptions.epochSize, parameters: parameters)
        let configuration = try prefetchConfiguration()
        if let existing = ShardWriter.upToDate(out, mixture: plan, epochs: epochRange, configuration: configuration) {
            printError("\(out): up to date (mixture of \(plan.names.joined(separator: ", ")), \(existing.totals.batches) batches)")
            return
        }
        let manifest = try await showingProgress("mixture") { progress in
            try await ShardWriter.writeMixture(
                plan: plan, datasets: datasets, epochs: epochRange, configuration: configuration, to: out,
                targetShardBytes: shardMB * 1_000_000, progress: progress)
        }
        var summary = "\(out): \(manifest.totals.batches) batches, \(manifest.totals.samples) samples in \(manifest.shards.count) shards"
        if let mixture = manifest.mixture { summary += "\n" + mixture.summaryLines.joined(separator: "\n") }
        if plan.plan.droppedPerEpoch > 0 { summary += "\n  note: \(plan.plan.droppedPerEpoch) draws dropped per epoch (tail shorter than a batch; --pad keeps them)" }
        printError(summary)
    }

    /// Writes a packed plan's shards and prints their efficiency.
    private func writePacked(_ store: Dataset, _ plan: PackedPlan, epochs: Range<Int>) async throws {
        try await writePacked("dataset version \(plan.base.datasetVersion)") { progress in
            try await ShardWriter.writePacked(
                dataset: store, plan: plan, epochs: epochs, compressionLevel: level, to: out, targetShardBytes: shardMB * 1_000_000,
                progress: progress)
        }
    }

    /// Runs `write` (a packed plan's) with a progress line, then prints the set's batches,
    /// `origin`, the mixture's sources if any and the packing's efficiency.
    private func writePacked(
        _ origin: String, _ write: (@escaping @Sendable (ShardWriter.Progress) -> Void) async throws -> ShardManifest
    ) async throws {
        let manifest = try await showingProgress("packed", write)
        var summary = "\(out): \(manifest.totals.batches) batches of packed rows in \(manifest.shards.count) shards; \(origin)"
        if let mixture = manifest.mixture { summary += "\n" + mixture.summaryLines.joined(separator: "\n") }
        if let packing = manifest.packing { summary += "\n  " + packing.summary }
        printError(summary)
    }

    /// Runs `write` with a progress line of its batches, marked `detail`.
    private func showingProgress(
        _ detail: String, _ write: (@escaping @Sendable (ShardWriter.Progress) -> Void) async throws -> ShardManifest
    ) async throws -> ShardManifest {
        let line = ProgressLine()
        let out = self.out
        let manifest = try await write { p in
            line.show(label: out, done: p.batches, total: p.totalBatches, unit: "batches", detail: detail, elapsed: p.elapsedSeconds)
        }
        line.finish()
        return manifest
    }
}
