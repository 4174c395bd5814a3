import Foundation
import Logging
import MBData
import MBDataWire
import PostgresNIO

/// An output held in the PostgreSQL state database, as `mbdata outputs list --state` shows it.
package struct PostgresOutputSummary: Sendable, Encodable {
    /// One inference job of the output and its coverage.
    package struct Job: Sendable, Encodable {
        /// The job's cursor id.
        package var cursor: String
        /// The plan's split; nil for every sample.
        package var split: String?
        /// Rows per batch.
        package var batchSize: Int
        /// The dataset version the job's plan is pinned to.
        package var datasetVersion: Int
        /// Batches committed, of ``batches``.
        package var finishedBatches: Int
        /// The job's batches.
        package var batches: Int
        /// Rows the job wrote (a sample that had a row from another job keeps it).
        package var rowsWritten: Int
        /// The real rows of the job's plan: what it writes when every batch is committed.
        package var rowsExpected: Int
    }

    /// The dataset's name, as the daemons serve it.
    package var dataset: String
    /// The output's name.
    package var output: String
    /// The output's table in the schema `mbdata`.
    package var table: String
    /// The output's fields.
    package var fields: [Field]
    /// Rows in the table.
    package var rows: Int
    /// When the output was first opened in the database (ISO 8601).
    package var createdAt: String
    /// The output's inference jobs.
    package var jobs: [Job]
}

extension PostgresStateStore {
    /// Runs `body` with a store of `url` whose connection pool runs meanwhile (what a command
    /// that is not a daemon needs), then shuts the pool down.
    package static func withStore<T: Sendable>(
        url: String, logger: Logger, _ body: @escaping @Sendable (PostgresStateStore) async throws -> T
    ) async throws -> T {
        let store = try PostgresStateStore(url: url, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await store.run()
                return nil
            }
            defer { group.cancelAll() }
            let result = try await body(store)
            return result
        }
    }

    /// Every output in the database, or `dataset`'s, with its jobs' coverage.
    package func outputSummaries(dataset: String? = nil) async throws -> [PostgresOutputSummary] {
        let registered = try await transaction("the list of outputs") { connection, logger in
            var found: [(dataset: String, output: String, schema: String, table: String, createdAt: String)] = []
            for try await row in try await connection.query(
                """
                SELECT dataset, output, schema, table_name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                FROM mbdata.outputs WHERE \(dataset)::text IS NULL OR dataset = \(dataset) ORDER BY dataset, output
                """, logger: logger
            ).decode((String, String, String, String, String).self) {
                found.append((dataset: row.0, output: row.1, schema: row.2, table: row.3, createdAt: row.4))
            }
            return found
        }
        var summaries: [PostgresOutputSummary] = []
        for output in registered {
            let schema = try Self.schema(output.schema, output: output.output)
            let table = PostgresOutputTable(name: output.table, schema: schema)
            let (rows, jobs) = try await transaction("the coverage of output \(output.output)") { connection, logger in
                var rows = 0
                for try await count in try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \(table.qualifiedName)"), logger: logger)
                    .decode(Int.self)
                {
                    rows = count
                }
                var jobs: [PostgresOutputSummary.Job] = []
                for try await (json, expected, written) in try await connection.query(
                    """
                    SELECT c.state::text, j.expected_rows, COALESCE((SELECT sum(rows) FROM mbdata.output_batches b WHERE b.cursor = j.cursor), 0)::bigint
                    FROM mbdata.output_jobs j JOIN mbdata.cursors c ON c.id = j.cursor
                    WHERE j.dataset = \(output.dataset) AND j.output = \(output.output) ORDER BY j.cursor
                    """, logger: logger
                ).decode((String, Int, Int).self) {
                    let state = try WireJSON.decode(CursorState.self, from: Data(json.utf8))
                    jobs.append(
                        .init(
                            cursor: state.cursor, split: state.plan.split, batchSize: state.plan.batchSize, datasetVersion: state.datasetVersion,
                            finishedBatches: state.progress(epoch: 0).finishedCount, batches: state.batchesPerEpoch, rowsWritten: written,
                            rowsExpected: expected))
                }
                return (rows, jobs)
            }
            summaries.append(
                PostgresOutputSummary(
                    dataset: output.dataset, output: output.output, table: output.table, fields: schema.fields, rows: rows,
                    createdAt: output.createdAt, jobs: jobs))
        }
        return summaries
    }

    /// Writes every row of `dataset`'s output `output`, ordered by `_id`, to `path` in
    /// `format`, as `Dataset.exportOutput` writes an output of a dataset file (the same
    /// writers): from one snapshot of the table, streamed, each file put in place when whole.
    /// No time limit: an export takes as long as its rows do.
    ///
    /// - Returns: The number of rows exported.
    /// - Throws: `MBDataError` `.invalidArgument` when the database holds no such output;
    ///   `.corruptData` naming the row and field when a stored value does not fit its field;
    ///   `.storage` when the database or a file cannot be read or written.
    package func exportOutput(dataset: String, output: String, format: OutputExportFormat, to path: String) async throws -> Int {
        try await migrate()
        let logger = logger
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
                var registered: (schema: String, table: String)?
                for try await found in try await connection.query(
                    "SELECT schema, table_name FROM mbdata.outputs WHERE dataset = \(dataset) AND output = \(output)", logger: logger
                ).decode((String, String).self) {
                    registered = found
                }
                guard let registered else {
                    throw MBDataError(
                        .invalidArgument, "the state database holds no output \(output) of dataset \(dataset)", source: location, parameter: "output")
                }
                let table = PostgresOutputTable(name: registered.table, schema: try Self.schema(registered.schema, output: output))
                var rows = 0
                for try await count in try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \(table.qualifiedName)"), logger: logger)
                    .decode(Int.self)
                {
                    rows = count
                }
                let export = try await OutputExportChunks(format: format, path: path, schema: table.schema, rows: rows)
                var bytes: [UInt8] = []
                var cells: [Range<Int>] = []
                for try await row in try await connection.query(PostgresQuery(unsafeSQL: table.selectSQL), logger: logger) {
                    let id = try table.decode(row, bytes: &bytes, cells: &cells)
                    try await export.append(id: id, bytes: bytes, cells: cells)
                }
                return try await export.commit()
            }
        } catch {
            let unwrapped = PostgresFailure.unwrapped(error)
            guard PostgresFailure.isDatabaseError(unwrapped) else { throw unwrapped }
            throw MBDataError(.storage, "cannot read output \(output) of dataset \(dataset): \(PostgresFailure.describe(unwrapped))", source: location, cause: unwrapped)
        }
    }

    private static func schema(_ json: String, output: String) throws -> Schema {
        do {
            return try Schema(json: Data(json.utf8))
        } catch {
            throw MBDataError(.corruptData, "the stored schema of output \(output) does not parse", cause: error)
        }
    }
}

/// An ``OutputExportWriter`` fed rows in chunks, each written on the blocking executor, so
/// that the rows a database streams are written off the cooperative pool.
private final class OutputExportChunks: @unchecked Sendable {
    /// Rows collected before they are written.
    private static let chunkBytes = 1 << 20

    // Touched by one task at a time: the export's, or the blocking executor's while it awaits.
    private let writer: OutputExportWriter
    private var ids: [Int64] = []
    private var bytes: [UInt8] = []
    private var cells: [Range<Int>] = []
    private var written = 0

    init(format: OutputExportFormat, path: String, schema: Schema, rows: Int) async throws {
        writer = try await runBlocking { UncheckedWriter(try OutputExportWriter(format: format, path: path, schema: schema, rows: rows)) }.writer
    }

    /// Adds a row: its id and its fields' bytes (`rowCells` ranges of `rowBytes`).
    func append(id: Int64, bytes rowBytes: [UInt8], cells rowCells: [Range<Int>]) async throws {
        let base = bytes.count
        ids.append(id)
        bytes += rowBytes
        cells += rowCells.map { ($0.lowerBound + base)..<($0.upperBound + base) }
        if bytes.count >= Self.chunkBytes { try await flush() }
    }

    /// Writes what is left and puts the files in place; returns the rows exported.
    func commit() async throws -> Int {
        try await flush()
        try await runBlocking { try self.writer.commit(rows: self.written) }
        return written
    }

    private func flush() async throws {
        guard !ids.isEmpty else { return }
        try await runBlocking {
            let fields = self.ids.isEmpty ? 0 : self.cells.count / self.ids.count
            try self.bytes.withUnsafeBytes { raw in
                for (index, id) in self.ids.enumerated() {
                    let row = self.cells[(index * fields)..<((index + 1) * fields)].map { UnsafeRawBufferPointer(rebasing: raw[$0]) }
                    try self.writer.append(id: id, cells: row)
                }
            }
            self.written += self.ids.count
            self.ids.removeAll(keepingCapacity: true)
            self.bytes.removeAll(keepingCapacity: true)
            self.cells.removeAll(keepingCapacity: true)
        }
    }
}

/// Carries a writer out of the blocking executor that made it.
private struct UncheckedWriter: @unchecked Sendable {
    let writer: OutputExportWriter
    init(_ writer: OutputExportWriter) { self.writer = writer }
}
