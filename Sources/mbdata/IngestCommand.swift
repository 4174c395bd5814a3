import ArgumentParser
import Foundation
import MBData

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Validate samples from files and add them to a dataset.",
        discussion: """
            Sources: FILE.jsonl, FILE.csv, FIELD=FILE.npy pairs, FILE.npz, an image folder \
            root/<class>/<file>, a token binary (.bin, with --seq-len), or - for stdin (JSONL unless --format).
            Samples are committed --batch-rows at a time; re-running after a failure or a kill continues \
            after the last committed record, and with a key no sample is added twice.
            """)

    @Argument(help: "The dataset file; created when missing.")
    var dataset: String

    @Argument(help: "Source files, FIELD=path.npy pairs, folders, or - for stdin.")
    var sources: [String]

    @Option(help: "The sample schema (JSON). Needed for a new dataset; must match an existing one.")
    var schema: String?

    @Option(help: "Source format: \(SourceFormat.allCases.map(\.rawValue).joined(separator: "|")) (default: from the extension).")
    var format: SourceFormat?

    @Option(help: "The field that identifies a sample; re-ingesting a known key adds nothing (overrides the schema's key).")
    var key: String?

    @Option(help: "Put every sample in this split (default: train).")
    var split: String?

    @Option(name: .customLong("val-fraction"), help: "Put this fraction of samples in 'val' by a hash of the key or content.")
    var valFraction: Double?

    @Option(name: .customLong("on-error"), help: "fail: stop at the first bad record; skip: pass over bad records.")
    var onError: IngestOptions.ErrorPolicy = .fail

    @Option(name: .customLong("max-errors"), help: "With --on-error skip, fail after more than N bad records.")
    var maxErrors: Int = 100

    @Option(name: .customLong("batch-rows"), help: "Records per committed transaction.")
    var batchRows: Int = 10_000

    @Option(name: .customLong("seq-len"), help: "Tokens per sample for token binaries (1…\(RecordLimits.maxSequenceLength)).")
    var seqLen: Int?

    @Option(
        name: .customLong("max-record-mb"),
        help: "The most memory one record may need while parsed: a line, tensor, image or token window (MiB, 1…\(RecordLimits.largestMaxRecordBytes >> 20)).")
    var maxRecordMB: Int = RecordLimits.defaultMaxRecordBytes >> 20

    @Option(name: .customLong("token-dtype"), help: "Token width in token binaries: uint16 or uint32.")
    var tokenDtype: String = "uint16"

    @Flag(help: "Read a source again even if the log says it was fully ingested.")
    var force = false

    @Flag(help: "Print the summaries as JSON on stdout.")
    var json = false

    func validate() throws {
        if let seqLen, !(1...RecordLimits.maxSequenceLength).contains(seqLen) {
            throw ValidationError("--seq-len must be within 1…\(RecordLimits.maxSequenceLength) tokens, got \(seqLen)")
        }
        if !(1...IngestOptions.maxRowsPerTransaction).contains(batchRows) {
            throw ValidationError("--batch-rows must be within 1…\(IngestOptions.maxRowsPerTransaction), got \(batchRows)")
        }
        if maxErrors < 0 { throw ValidationError("--max-errors must be ≥ 0, got \(maxErrors)") }
        if let valFraction, !(0...1).contains(valFraction) {
            throw ValidationError("--val-fraction must be within 0…1, got \(valFraction)")
        }
        if !(1...(RecordLimits.largestMaxRecordBytes >> 20)).contains(maxRecordMB) {
            throw ValidationError("--max-record-mb must be within 1…\(RecordLimits.largestMaxRecordBytes >> 20), got \(maxRecordMB)")
        }
    }

    func run() async throws {
        AllocatorTuning.applyForBatchWorkloads()
        try await reportingErrors {
            var schemaValue = try schema.map { try Schema(contentsOf: $0) }
            if let key {
                guard var value = schemaValue else {
                    throw MBDataError(.invalidArgument, "--key needs --schema")
                }
                value.key = key
                try value.validate()
                schemaValue = value
            }
            guard ["uint16", "uint32"].contains(tokenDtype) else {
                throw MBDataError(.invalidArgument, "--token-dtype must be uint16 or uint32, got \(tokenDtype)")
            }
            var options = IngestOptions()
            options.onError = onError
            options.maxErrors = maxErrors
            options.rowsPerTransaction = batchRows
            options.split = split
            options.validationFraction = valFraction
            options.force = force
            options.maxRecordBytes = maxRecordMB << 20
            let spec = SourceSpec(
                paths: sources, format: format, sequenceLength: seqLen, tokenByteWidth: tokenDtype == "uint32" ? 4 : 2)

            let progress = ProgressLine()
            let summaries: [IngestSummary]
            do {
                summaries = try await Dataset.ingest(into: dataset, spec, schema: schemaValue, options: options) { progress.update($0) }
                progress.finish()
            } catch {
                progress.finish()
                throw error
            }
            if json {
                try printJSON(summaries)
            }
            for summary in summaries {
                printError(Self.describe(summary))
            }
        }
    }

    static func describe(_ s: IngestSummary) -> String {
        var text = "\(s.source): "
        if s.alreadyIngested {
            text += "0 rows added"
        } else {
            let rate = Double(s.recordsRead) / max(s.seconds, 1e-6)
            text += "\(s.rowsAdded) rows added, \(s.rowsSkipped) known keys skipped, \(s.rowsFailed) bad records skipped; "
            text += String(format: "%.1f MB in %.2f s (%.0f rows/s, %.1f MB/s)", Double(s.bytesRead) / 1e6, s.seconds, rate, Double(s.payloadBytes) / 1e6 / max(s.seconds, 1e-6))
            if let resumed = s.resumedFrom { text += "; continued interrupted ingest #\(resumed)" }
        }
        text += "; dataset version \(s.datasetVersion)"
        for note in s.notes { text += "\n  note: \(note)" }
        for error in s.errors { text += "\n  skipped: \(error)" }
        if s.rowsFailed > s.errors.count { text += "\n  … and \(s.rowsFailed - s.errors.count) more bad records" }
        return text
    }
}

extension SourceFormat: ExpressibleByArgument {}
extension IngestOptions.ErrorPolicy: ExpressibleByArgument {}
