import Foundation
import GRDB

extension Dataset {
    /// Reads every source of `spec` into the dataset and returns one summary per source.
    ///
    /// With no `schema`, the dataset's own is used; a dataset without one takes `schema`.
    /// Samples are committed `options.rowsPerTransaction` records at a time: a failure or a
    /// kill loses at most the open transaction, and re-running the same ingest continues
    /// after the last committed record (and, with a key, adds no sample twice). Cancelling
    /// the calling task stops the ingest between two records, as a failure would, and a
    /// re-run resumes it. Reading runs as a job on the process-wide
    /// `BlockingExecutor` (holding one of its threads for the ingest), writing on the
    /// database's writer queue.
    public func ingest(
        _ spec: SourceSpec, schema: Schema? = nil, options: IngestOptions = IngestOptions(),
        progress: (@Sendable (IngestProgress) -> Void)? = nil
    ) async throws -> [IngestSummary] {
        try options.validate()
        try spec.validate()
        let sources = try spec.sources()
        for source in sources { _ = try source.resolvedFormat() }
        return try await write(schema: schema, options: options, progress: progress) { ingestor, schema in
            try sources.map { spec in
                try ingestor.run(try spec.open(schema: schema, maxRecordBytes: options.maxRecordBytes), fingerprint: spec.fingerprint())
            }
        }
    }

    /// Reads a source of your own into the dataset (see ``SampleSource`` for the contract).
    ///
    /// Schema, options, transactions, resuming (by the source's ``SampleSource/fingerprint``),
    /// cancellation and the ingest log work as for a ``SourceSpec``; every sample is checked
    /// against the schema and one that does not fit counts as a bad record.
    public func ingest(
        from source: sending any SampleSource, schema: Schema? = nil, options: IngestOptions = IngestOptions(),
        progress: (@Sendable (IngestProgress) -> Void)? = nil
    ) async throws -> IngestSummary {
        try options.validate()
        let handOff = UncheckedSendable(source)
        return try await write(schema: schema, options: options, progress: progress) { ingestor, schema in
            let source = handOff.value
            return try ingestor.run(SchemaCheckedSource(source, schema: schema), fingerprint: source.fingerprint)
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

    /// Runs `body` on the writer connection in bulk-load mode with the schema established.
    ///
    /// The access is not one of GRDB's task-bound ones, which would interrupt every statement
    /// once the calling task is cancelled: a cancelled ingest stops its reading between two
    /// records and still rolls back, logs the run as interrupted and returns to WAL.
    private func write<T: Sendable>(
        schema: Schema?, options: IngestOptions, progress: (@Sendable (IngestProgress) -> Void)?,
        _ body: @escaping @Sendable (Ingestor, Schema) throws -> T
    ) async throws -> T {
        try Task.checkCancellation()
        try refuseWritesWhenReadOnly()
        let (path, pool) = (self.path, self.pool)
        let cancellation = ParsingPipeline.Cancellation()
        // Idle reader connections of this process would keep the bulk journal mode out.
        pool.releaseMemory()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                pool.asyncWriteWithoutTransaction { db in
                    continuation.resume(
                        with: Result {
                            try db.describingFailures(.storage, "the ingest failed to write the dataset", source: path) {
                                let schema = try Self.establishSchema(db, given: schema, path: path)
                                let bulk = try BulkLoadMode.enter(db)
                                defer { BulkLoadMode.leave(db, entered: bulk) }
                                let ingestor = Ingestor(db: db, schema: schema, options: options, progress: progress, cancellation: cancellation)
                                return try body(ingestor, schema)
                            }
                        })
                }
            }
        } onCancel: {
            cancellation.cancel()
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
