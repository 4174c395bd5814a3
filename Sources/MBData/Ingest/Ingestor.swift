import Foundation
import GRDB

/// One source into one dataset, on the writer connection: a ``ParsingPipeline`` reads the
/// source on a thread of the blocking executor while this side inserts its blocks and commits a transaction
/// per `rowsPerTransaction` records together with the ingest log and the dataset version.
struct Ingestor {
    let db: Database
    let schema: Schema
    let options: IngestOptions
    let progress: (@Sendable (IngestProgress) -> Void)?
    let cancellation: ParsingPipeline.Cancellation

    /// Reads `source` (whose input `fingerprint` names, if anything does) into the dataset.
    func run(_ source: any SampleSource, fingerprint: String?) throws -> IngestSummary {
        let started = Date()
        let log = IngestLogStore(db: db)
        var summary = IngestSummary(source: source.name, format: source.formatName)

        var skipRecords = 0
        if let fingerprint, !options.force, let previous = try log.lastRun(fingerprint: fingerprint) {
            if previous.isComplete {
                summary.alreadyIngested = true
                summary.ingestID = previous.id
                summary.datasetVersion = try log.currentVersion()
                summary.notes.append("already ingested by ingest #\(previous.id); nothing read (a forced ingest reads it again)")
                return summary
            }
            skipRecords = previous.recordsCommitted
            if skipRecords > 0 { summary.resumedFrom = previous.id }
        }

        let run = try log.start(source: source, fingerprint: fingerprint, options: options, skipping: skipRecords, resuming: summary.resumedFrom)
        summary.ingestID = run
        summary.recordsRead = skipRecords
        var version = try log.currentVersion()
        let (sourceName, expectedRecords, expectedBytes) = (source.name, source.expectedRecords, source.expectedBytes)

        let pipeline = ParsingPipeline(source: source, schema: schema, options: options, skip: skipRecords, cancellation: cancellation)
        defer { pipeline.stop() }

        let inserter = try SampleInserter(db: db, sql: SampleTable.insertSQL(for: schema))
        var inTransaction = false
        var pending = IngestSummary(source: "", format: "")
        do {
            loop: while let message = pipeline.take() {
                switch message {
                case .block(let block):
                    if !inTransaction {
                        try db.beginTransaction(.immediate)
                        inTransaction = true
                    }
                    for row in block.rows {
                        if try inserter.insert(split: row.split, values: row.values) {
                            pending.rowsAdded += 1
                        } else {
                            pending.rowsSkipped += 1
                        }
                    }
                    pending.recordsRead += block.recordsConsumed
                    pending.rowsFailed += block.badRecords.count
                    pending.payloadBytes += block.payloadBytes
                    pending.bytesRead = block.bytesRead
                    pending.errors += block.badRecords.prefix(max(0, 10 - summary.errors.count - pending.errors.count)).map(\.description)
                    if block.closesTransaction {
                        if pending.rowsAdded > 0 { version += 1 }
                        summary.add(pending)
                        try log.recordProgress(of: summary, run: run, started: started)
                        if pending.rowsAdded > 0 { try log.recordVersion(version, rowsAdded: pending.rowsAdded, run: run) }
                        try db.commit()
                        inTransaction = false
                        pending = IngestSummary(source: "", format: "")
                        progress?(
                            IngestProgress(
                                source: sourceName, recordsRead: summary.recordsRead, rowsAdded: summary.rowsAdded,
                                bytesRead: summary.bytesRead, expectedRecords: expectedRecords,
                                expectedBytes: expectedBytes, elapsedSeconds: Date().timeIntervalSince(started)))
                    }
                case .finished(let contentHash, let notes, let bytesRead):
                    summary.contentHash = contentHash
                    summary.notes += notes
                    summary.bytesRead = bytesRead
                    break loop
                case .failed(let error):
                    throw error
                }
            }
        } catch {
            if inTransaction { try? db.rollback() }
            let message = (error as? MBDataError)?.description ?? "\(error)"
            try? log.recordEnd(of: run, status: error is CancellationError ? "interrupted" : "failed", message: message, started: started)
            throw error
        }
        if summary.recordsRead == 0 {
            try log.recordEmpty(run)
            throw MBDataError(.emptySource, "the source holds no records", source: sourceName)
        }
        summary.seconds = Date().timeIntervalSince(started)
        summary.datasetVersion = version
        try log.recordCompletion(of: run, summary)
        return summary
    }
}

extension IngestSummary {
    /// Adds the counters of a committed transaction.
    fileprivate mutating func add(_ committed: IngestSummary) {
        recordsRead += committed.recordsRead
        rowsAdded += committed.rowsAdded
        rowsSkipped += committed.rowsSkipped
        rowsFailed += committed.rowsFailed
        payloadBytes += committed.payloadBytes
        bytesRead = committed.bytesRead
        errors += committed.errors
    }
}
