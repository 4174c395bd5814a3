import Foundation
import Logging
import MBData
import MBDataServer

extension PostgresOutputSummary {
    /// Indented lines, as `outputs list` shows an output of a dataset file: the output and its
    /// table, its fields, and each job's batches and rows written of those expected.
    var renderedLines: [String] {
        var lines = ["  \(dataset) \(output)  \(rows) rows  (table mbdata.\(table), created \(createdAt))"]
        let width = fields.map(\.name.count).max() ?? 0
        for field in fields {
            lines.append("    " + field.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + field.typeDescription)
        }
        for job in jobs {
            var line = "    job \(job.cursor): \(job.finishedBatches)/\(job.batches) batches finished, \(job.rowsWritten)/\(job.rowsExpected) rows written; "
            line += "split \(job.split ?? "(all)"), batch \(job.batchSize), dataset version \(job.datasetVersion)"
            lines.append(line)
        }
        return lines
    }
}

extension Logger {
    /// What a command that reads the state database logs: its warnings and errors, on standard error.
    static var stateCommand: Logger {
        var logger = Logger(label: "mbdata.state") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        return logger
    }
}
