import ArgumentParser
import Foundation
import MBData

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a dataset (schema, splits, size, version, ingest log) or a shard directory (batches, compression, plan, checksums).")

    @Argument(help: "A dataset file or a shard directory.")
    var dataset: String

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            if isDirectory(dataset) {
                let shards = try ShardSet(directory: dataset)
                if json {
                    try printJSON(ShardSummary(shards), snakeCase: true)
                } else {
                    print(ShardSummary(shards).rendered)
                }
                return
            }
            let store = try Dataset(path: dataset)
            let info = try await store.info()
            let outputs = try await OutputSummary.all(in: store)
            if json {
                try printJSON(DatasetReport(info: info, outputs: outputs))
            } else {
                print(Self.render(info, outputs: outputs))
            }
        }
    }

    static func render(_ info: DatasetInfo, outputs: [OutputSummary]) -> String {
        var lines: [String] = []
        lines.append("dataset  \(info.path)")
        lines.append("format   \(info.formatVersion)    version \(info.datasetVersion)    size \(String(format: "%.2f MB", Double(info.sizeOnDisk) / 1e6))")
        if info.readOnly {
            lines.append("storage  not writable here (read-only storage or permissions): read as it is, writes refused")
        }
        if let schema = info.schema {
            lines.append("schema   \(schema.name)" + (schema.key.map { "  (key: \($0))" } ?? ""))
            let width = schema.fields.map(\.name.count).max() ?? 0
            for field in schema.fields {
                lines.append("  " + field.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + field.typeDescription)
            }
        } else {
            lines.append("schema   (none yet: nothing ingested)")
        }
        lines.append("samples  \(info.sampleCount)")
        for (split, count) in info.splits.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(split): \(count)")
        }
        if let classes = info.classes {
            lines.append("classes  " + classes.enumerated().map { "\($0.offset)=\($0.element)" }.joined(separator: " "))
        }
        lines.append("ingests  \(info.ingests.count)")
        for entry in info.ingests {
            var line = "  #\(entry.id) \(entry.startedAt) \(entry.status) \(entry.format) \(entry.source): "
            line += "\(entry.rowsAdded) added, \(entry.rowsSkipped) known keys, \(entry.rowsFailed) bad, "
            line += String(format: "%.1f MB, %.2f s", Double(entry.bytes) / 1e6, entry.seconds)
            if let hash = entry.contentHash { line += ", \(hash)" }
            if let message = entry.message { line += " — \(message)" }
            lines.append(line)
        }
        lines.append("outputs  \(outputs.count)")
        lines += outputs.flatMap(\.renderedLines)
        return lines.joined(separator: "\n")
    }
}

/// `inspect --json` of a dataset: the keys of ``DatasetInfo`` and `outputs`.
struct DatasetReport: Encodable {
    var info: DatasetInfo
    var outputs: [OutputSummary]

    private enum CodingKeys: String, CodingKey { case outputs }

    func encode(to encoder: any Encoder) throws {
        try info.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(outputs, forKey: .outputs)
    }
}
