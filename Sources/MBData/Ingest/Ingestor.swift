import Foundation
import GRDB

extension Dataset {
    /// Reads every source of `spec` into the dataset and returns one summary per source.
    ///
    /// With no `schema`, the dataset's own is used; a dataset without one takes `schema`.
    /// Samples are committed `options.rowsPerTransaction` records at a time: a failure or a
    /// kill loses at most the open transaction, and re-running the same ingest continues
    /// after the last committed record (and, with a key, adds no sample twice).
    /// Parsing runs as a job on the process-wide ``BlockingExecutor`` (holding one of its
    /// threads for the ingest), writing on the database's writer queue.
    public func ingest(
        _ spec: SourceSpec, schema: Schema? = nil, options: IngestOptions = IngestOptions(),
        progress: (@Sendable (IngestProgress) -> Void)? = nil
    ) async throws -> [IngestSummary] {
        try options.validate()
        let path = self.path
        try spec.validate()
        let sources = try spec.sources()
        for source in sources { _ = try source.resolvedFormat() }
        // Idle reader connections of this process would keep the bulk journal mode out.
        pool.releaseMemory()
        do {
            return try await pool.writeWithoutTransaction { db in
                try db.describingFailures(.storage, "the ingest failed to write the dataset", source: path) {
                    let schema = try Self.establishSchema(db, given: schema, path: path)
                    let bulk = try BulkLoadMode.enter(db)
                    defer { BulkLoadMode.leave(db, entered: bulk) }
                    var summaries: [IngestSummary] = []
                    for source in sources {
                        let ingestor = Ingestor(db: db, schema: schema, spec: source, options: options, progress: progress)
                        summaries.append(try ingestor.run())
                    }
                    return summaries
                }
            }
        } catch {
            throw MBDataError.wrapping(error, .storage, "the ingest failed to write the dataset", source: path)
        }
    }

    /// Ingests into the dataset at `path`, creating it when missing; a dataset this call
    /// created is removed again if the ingest fails before committing any sample, so a typo
    /// in a source path or a bad first record leaves nothing behind.
    public static func ingest(
        into path: String, _ spec: SourceSpec, schema: Schema? = nil, options: IngestOptions = IngestOptions(),
        progress: (@Sendable (IngestProgress) -> Void)? = nil
    ) async throws -> [IngestSummary] {
        let isNew = !FileManager.default.fileExists(atPath: path)
        do {
            return try await Dataset(path: path, create: true).ingest(spec, schema: schema, options: options, progress: progress)
        } catch {
            if isNew, (try? await Dataset(path: path).info().sampleCount) == 0 { removeFiles(at: path) }
            throw error
        }
    }

    /// The schema to ingest with: the dataset's, which a given one must equal, or the given
    /// one, which then creates the samples table.
    private static func establishSchema(_ db: Database, given: Schema?, path: String) throws -> Schema {
        if let stored = try storedSchema(db) {
            if let given, given.fields != stored.fields || given.key != stored.key {
                throw MBDataError(
                    .schemaMismatch,
                    "the schema differs from the one the dataset was created with: \(stored.canonicalJSON())", source: path)
            }
            return stored
        }
        guard let given else {
            throw MBDataError(.invalidArgument, "a new dataset needs a schema", source: path, parameter: "schema")
        }
        try db.inTransaction {
            try db.execute(sql: SampleTable.createSQL(for: given))
            try setMeta(db, "schema", given.canonicalJSON())
            return .commit
        }
        return given
    }
}

/// One source into one dataset: a parser job on the blocking executor feeds blocks of samples through a bounded
/// queue to the writer, which commits a transaction per `rowsPerTransaction` records
/// together with the ingest log and the dataset version.
final class Ingestor {
    private let db: Database
    private let schema: Schema
    private let spec: SourceSpec
    private let options: IngestOptions
    private let progress: (@Sendable (IngestProgress) -> Void)?

    init(db: Database, schema: Schema, spec: SourceSpec, options: IngestOptions, progress: (@Sendable (IngestProgress) -> Void)?) {
        self.db = db
        self.schema = schema
        self.spec = spec
        self.options = options
        self.progress = progress
    }

    /// A run of parsed samples. `closesTransaction` marks the last block of a transaction.
    private struct Block {
        var rows: [(split: String, values: [SampleValue])] = []
        var recordsConsumed = 0
        var badRecords: [MBDataError] = []
        var payloadBytes = 0
        var bytesRead = 0
        var closesTransaction = false
    }

    private enum Message {
        case block(Block)
        case finished(contentHash: String, notes: [String], bytesRead: Int)
        case failed(any Error)
    }

    func run() throws -> IngestSummary {
        let started = Date()
        let source = try spec.open(schema: schema, maxRecordBytes: options.maxRecordBytes)
        var summary = IngestSummary(source: source.name, format: source.format.rawValue)
        let fingerprint = spec.fingerprint()

        var skipRecords = 0
        if let fingerprint, !options.force,
            let previous = try Row.fetchOne(
                db, sql: "SELECT id, status, records_read FROM mbdata_ingest_log WHERE fingerprint = ? ORDER BY id DESC LIMIT 1",
                arguments: [fingerprint])
        {
            let status: String = previous["status"]
            if status == "complete" {
                summary.alreadyIngested = true
                summary.ingestID = previous["id"]
                summary.datasetVersion = try currentVersion()
                summary.notes.append("already ingested by ingest #\(previous["id"] as Int64); nothing read (a forced ingest reads it again)")
                return summary
            }
            skipRecords = previous["records_read"]
            if skipRecords > 0 { summary.resumedFrom = previous["id"] }
        }

        try db.inTransaction {
            try recordMetadata(source.metadata)
            if let resumed = summary.resumedFrom {
                try db.execute(sql: "UPDATE mbdata_ingest_log SET status = 'interrupted' WHERE id = ? AND status = 'running'", arguments: [resumed])
            }
            try db.execute(
                sql: """
                    INSERT INTO mbdata_ingest_log(source, format, fingerprint, options, status, started_at, records_read, resumed_from)
                    VALUES (?, ?, ?, ?, 'running', ?, ?, ?)
                    """,
                arguments: [source.name, source.format.rawValue, fingerprint, options.optionsDescription, Timestamp.now(), skipRecords, summary.resumedFrom])
            return .commit
        }
        let ingestID = try Int64.fetchOne(db, sql: "SELECT max(id) FROM mbdata_ingest_log")!
        summary.ingestID = ingestID
        summary.recordsRead = skipRecords
        var version = try currentVersion()

        let queue = BoundedQueue<Message>(capacity: 4)
        let parserDone = DispatchSemaphore(value: 0)
        let (sourceName, expectedRecords, expectedBytes) = (source.name, source.expectedRecords, source.expectedBytes)
        // The source moves to the parser job; this thread no longer touches it.
        let handOff = UncheckedSendable(source)
        BlockingExecutor.submit { [schema, options, skipRecords] in
            Self.parse(source: handOff.value, schema: schema, options: options, skip: skipRecords, into: queue)
            parserDone.signal()
        }
        defer {
            queue.close()
            parserDone.wait()
        }

        let inserter = try SampleInserter(db: db, sql: SampleTable.insertSQL(for: schema))
        var inTransaction = false
        var pending = IngestSummary(source: "", format: "")
        do {
            loop: while let message = queue.take() {
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
                        try commit(pending, into: &summary, version: version, ingestID: ingestID, started: started)
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
            try? db.execute(
                sql: "UPDATE mbdata_ingest_log SET status = 'failed', finished_at = ?, duration_s = ?, message = ? WHERE id = ?",
                arguments: [Timestamp.now(), Date().timeIntervalSince(started), message, ingestID])
            throw error
        }
        if summary.recordsRead == 0 {
            try db.execute(sql: "UPDATE mbdata_ingest_log SET status = 'failed', message = 'no records' WHERE id = ?", arguments: [ingestID])
            throw MBDataError(.emptySource, "the source holds no records", source: sourceName)
        }
        summary.seconds = Date().timeIntervalSince(started)
        summary.datasetVersion = version
        try db.execute(
            sql: """
                UPDATE mbdata_ingest_log SET status = 'complete', finished_at = ?, duration_s = ?, content_hash = ?, bytes = ?,
                    message = ? WHERE id = ?
                """,
            arguments: [
                Timestamp.now(), summary.seconds, summary.contentHash, summary.bytesRead,
                summary.notes.isEmpty ? nil : summary.notes.joined(separator: "; "), ingestID,
            ])
        return summary
    }

    private func currentVersion() throws -> Int {
        Int(try Dataset.meta(db, "dataset_version") ?? "0") ?? 0
    }

    /// Commits the open transaction with the log counters and, if rows were added, a new version.
    private func commit(_ pending: IngestSummary, into summary: inout IngestSummary, version: Int, ingestID: Int64, started: Date) throws {
        summary.recordsRead += pending.recordsRead
        summary.rowsAdded += pending.rowsAdded
        summary.rowsSkipped += pending.rowsSkipped
        summary.rowsFailed += pending.rowsFailed
        summary.payloadBytes += pending.payloadBytes
        summary.bytesRead = pending.bytesRead
        summary.errors += pending.errors
        try db.execute(
            sql: """
                UPDATE mbdata_ingest_log SET records_read = ?, rows_added = ?, rows_skipped = ?, rows_failed = ?, bytes = ?,
                    duration_s = ? WHERE id = ?
                """,
            arguments: [
                summary.recordsRead, summary.rowsAdded, summary.rowsSkipped, summary.rowsFailed, summary.bytesRead,
                Date().timeIntervalSince(started), ingestID,
            ])
        if pending.rowsAdded > 0 {
            let maxID = try Int64.fetchOne(db, sql: "SELECT coalesce(max(_id), 0) FROM samples") ?? 0
            try Dataset.setMeta(db, "dataset_version", String(version))
            try db.execute(
                sql: "INSERT INTO mbdata_versions(version, max_id, rows_added, ingest_id, committed_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [version, maxID, pending.rowsAdded, ingestID, Timestamp.now()])
        }
        try db.commit()
    }

    /// Records dataset metadata a source defines; a different value already recorded is an error.
    private func recordMetadata(_ metadata: [String: String]) throws {
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            if let existing = try Dataset.meta(db, key) {
                guard existing == value else {
                    throw MBDataError(
                        .schemaMismatch, "the source's \(key) \(value) differ from the dataset's \(existing)", source: spec.paths.first)
                }
            } else {
                try Dataset.setMeta(db, key, value)
            }
        }
    }

    /// The parser job: reads records, assigns splits, cuts blocks at transaction
    /// boundaries and applies the error policy.
    private static func parse(source: any SampleSource, schema: Schema, options: IngestOptions, skip: Int, into queue: BoundedQueue<Message>) {
        let splitter = SplitAssigner(schema: schema, options: options)
        let blockPayloadLimit = 4 << 20
        var block = Block()
        var recordsInTransaction = 0
        var badTotal = 0
        var skipped = 0
        do {
            while let item = try source.next() {
                if skipped < skip {
                    skipped += 1
                    continue
                }
                block.recordsConsumed += 1
                recordsInTransaction += 1
                switch item {
                case .sample(let values):
                    block.rows.append((splitter.split(for: values), values))
                    block.payloadBytes += values.reduce(0) { $0 + $1.payloadByteCount }
                case .invalid(let error):
                    guard options.onError == .skip else {
                        queue.put(.failed(error))
                        return
                    }
                    badTotal += 1
                    if badTotal > options.maxErrors {
                        queue.put(
                            .failed(MBDataError(
                                .tooManyErrors, "more than \(options.maxErrors) bad records, the most allowed; the last: \(error)",
                                source: source.name, parameter: "IngestOptions.maxErrors")))
                        return
                    }
                    block.badRecords.append(error)
                }
                let closes = recordsInTransaction >= options.rowsPerTransaction
                if closes || block.payloadBytes >= blockPayloadLimit {
                    block.closesTransaction = closes
                    block.bytesRead = source.bytesRead
                    guard queue.put(.block(block)) else { return }
                    block = Block()
                    if closes { recordsInTransaction = 0 }
                }
            }
            if skipped < skip {
                queue.put(
                    .failed(MBDataError(
                        .invalidArgument,
                        "the log says an earlier run committed \(skip) records but the source now holds \(skipped); force the ingest to read it whole",
                        source: source.name, parameter: "IngestOptions.force")))
                return
            }
            block.closesTransaction = true
            block.bytesRead = source.bytesRead
            guard queue.put(.block(block)) else { return }
            queue.put(.finished(contentHash: source.contentHash, notes: source.notes, bytesRead: source.bytesRead))
        } catch {
            queue.put(.failed(error))
        }
    }
}

/// Decides each sample's split: fixed, or `val` for a deterministic fraction by hash.
struct SplitAssigner {
    let fixed: String
    let fraction: Double?
    let keyIndex: Int?

    init(schema: Schema, options: IngestOptions) {
        fixed = options.split ?? "train"
        fraction = options.validationFraction
        keyIndex = schema.keyIndex
    }

    func split(for values: [SampleValue]) -> String {
        guard let fraction else { return fixed }
        var hash = XXH64(seed: 0x6d62_6461_7461)
        for value in keyIndex.map({ [values[$0]] }) ?? values {
            switch value {
            case .integer(let i): withUnsafeBytes(of: i.littleEndian) { hash.update($0) }
            case .real(let d): withUnsafeBytes(of: d.bitPattern.littleEndian) { hash.update($0) }
            case .text(let s): hash.update(Array(s.utf8))
            case .blob(let b): hash.update(b)
            }
        }
        let unit = Double(hash.finalize() >> 11) / Double(1 << 53)
        return unit < fraction ? "val" : "train"
    }
}
