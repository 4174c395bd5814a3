import ArgumentParser
import Foundation
import MBData

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a dataset (SQLite integrity, every value against the schema, every output's values and _ids) or a shard directory (hashes, frames, coverage).",
        discussion: "Exits 1 and lists the first problems when any are found. A shard directory whose manifest, trailers or footers cannot be read as the format says exits 65 naming the first problem.")

    @Argument(help: "A dataset file or a shard directory.")
    var dataset: String

    @Option(name: .customLong("dataset"), help: "With a shard directory: also check that the shards match this dataset's current version.")
    var against: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            if isDirectory(dataset) {
                try await verifyShards()
                return
            }
            let store = try Dataset(path: dataset)
            var report = try await store.verify()
            report.problems += try await store.verifyOutputs().map(\.description)
            if json {
                try printJSON(report)
            } else if report.isValid {
                print("\(dataset): ok (\(report.samplesChecked) samples checked)")
            } else {
                print("\(dataset): \(report.problems.count + report.moreProblems) problems (\(report.samplesChecked) samples checked)")
                for problem in report.problems { print("  \(problem)") }
                if report.moreProblems > 0 { print("  … and \(report.moreProblems) more") }
            }
            if !report.isValid { throw ExitCode(ExitStatus.problemsFound) }
        }
    }

    private func verifyShards() async throws {
        // Opening checks the manifest, trailers, footers, frame order and totals; a set that
        // fails there cannot be read further and ends with exit 65 and the first problem.
        let shards = try ShardSet(directory: dataset)
        if let against {
            let source = try Dataset(path: against)
            let plan = try await source.plan(shards.manifest.plan.parameters)
            try shards.check(matches: plan, schema: try await source.schema())
        }
        let report = try await shards.verify()
        if json {
            try printJSON(report)
        } else if report.isValid {
            let fingerprint = report.fingerprintChecked ? "; the fingerprint matches the batches' ids" : ""
            guard shards.manifest.packing == nil else {
                print("\(dataset): ok (\(report.batchesChecked) packed batches: hashes, checksums and safetensors checked; packed tensors not yet)")
                return
            }
            print("\(dataset): ok (\(report.batchesChecked) batches, \(report.samplesChecked) samples; every epoch covers each sample once\(fingerprint))")
        } else {
            print("\(dataset): \(report.problems.count) problems (\(report.batchesChecked) batches checked)")
            for problem in report.problems { print("  \(problem)") }
        }
        if !report.isValid { throw ExitCode(ExitStatus.problemsFound) }
    }
}
