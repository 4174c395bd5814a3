import ArgumentParser
import Foundation
import MBData
import MBDataServer

struct OutputsExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an output's rows, ordered by _id, as .npy files, JSON lines or CSV.",
        discussion: """
            npy: --out is a directory (created) that gets _id.npy and one <field>.npy per field, as np.save writes them \
            (bfloat16 as float32). jsonl: one {"_id": …, "<field>": …} object a line, arrays as nested lists. \
            csv: a header _id,<fields>, arrays as quoted JSON lists. Floats are written in their shortest exact form, \
            NaN and infinities as NaN, Infinity, -Infinity. Every file appears whole or not at all.
            """)

    @OptionGroup var target: OutputTarget

    @Option(help: "npy, jsonl or csv.")
    var format: OutputExportFormat

    @Option(help: "The directory (npy) or file (jsonl, csv) to write.")
    var out: String

    @Option(
        help: """
            A postgresql:// state URL: export the output the daemons of a cluster wrote there (serve --state); \
            the dataset argument is then the dataset's name as the daemons serve it, and no file is read.
            """)
    var state: String?

    func run() async throws {
        try await reportingErrors {
            let started = ContinuousClock.now
            let rows: Int
            if let state {
                let (dataset, name, format, out) = (target.dataset, target.name, format, out)
                rows = try await PostgresStateStore.withStore(url: state, logger: .stateCommand) {
                    try await $0.exportOutput(dataset: dataset, output: name, format: format, to: out)
                }
            } else {
                rows = try await Dataset(path: target.dataset).exportOutput(target.name, format: format, to: out)
            }
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            printError("\(out): \(rows) rows of output \(target.name) exported as \(format.rawValue) in " + String(format: "%.2f s", seconds))
        }
    }
}

extension OutputExportFormat: ExpressibleByArgument {}
