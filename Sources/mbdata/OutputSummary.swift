import Foundation
import MBData

/// What `outputs list` and `inspect` show of one output: its fields, rows, coverage of each
/// split and the progress of its inference jobs.
struct OutputSummary: Encodable {
    struct Coverage: Encodable {
        var split: String
        var written: Int
        var expected: Int
    }

    struct Job: Encodable {
        var id: Int64
        var split: String?
        var batchSize: Int
        var seed: UInt64
        var shuffle: Bool
        var tail: String
        var datasetVersion: Int
        var finishedBatches: Int
        var batches: Int
    }

    var name: String
    var fields: [Field]
    var rows: Int
    var createdAt: String
    var coverage: [Coverage]
    var jobs: [Job]

    /// Every output of `dataset`, by name.
    static func all(in dataset: Dataset) async throws -> [OutputSummary] {
        var summaries: [OutputSummary] = []
        for output in try await dataset.outputs() {
            let coverage = try await dataset.outputCoverage(output.name).map {
                Coverage(split: $0.split, written: $0.written, expected: $0.expected)
            }
            var jobs: [Job] = []
            for job in try await dataset.inferenceJobs(output: output.name) {
                let parameters = job.plan.parameters
                jobs.append(
                    Job(
                        id: job.id, split: parameters.split, batchSize: parameters.batchSize, seed: parameters.seed,
                        shuffle: parameters.shuffle, tail: parameters.tail.rawValue, datasetVersion: job.plan.datasetVersion,
                        finishedBatches: try await dataset.finishedBatches(of: job).count, batches: job.plan.plan.batchesPerEpoch))
            }
            summaries.append(
                OutputSummary(
                    name: output.name, fields: output.schema.fields, rows: output.rows, createdAt: output.createdAt,
                    coverage: coverage, jobs: jobs))
        }
        return summaries
    }

    /// Indented lines: the output, its fields, its coverage by split and its jobs.
    var renderedLines: [String] {
        var lines = ["  \(name)  \(rows) rows  (table outputs_\(name), created \(createdAt))"]
        let width = fields.map(\.name.count).max() ?? 0
        for field in fields {
            lines.append("    " + field.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + field.typeDescription)
        }
        if !coverage.isEmpty {
            lines.append("    written/expected: " + coverage.map { "\($0.split) \($0.written)/\($0.expected)" }.joined(separator: ", "))
        }
        for job in jobs {
            var line = "    job \(job.id): \(job.finishedBatches)/\(job.batches) batches finished; "
            line += "split \(job.split ?? "(all)"), batch \(job.batchSize), seed \(job.seed), shuffle \(job.shuffle), tail \(job.tail), "
            line += "dataset version \(job.datasetVersion)"
            lines.append(line)
        }
        return lines
    }
}
