import GRDB
import GRDBSQLite

/// The write-back hot path: inserts a validated submission's real rows into
/// `outputs_<name>`, binding each row's values straight from the tensors' memory with
/// SQLite's C API (`SQLITE_STATIC`: no copy before SQLite builds the record), as
/// ``SampleInserter`` does for ingest. Through GRDB's `StatementArguments` every array cell
/// would be copied into a `Data`, then again by `SQLITE_TRANSIENT`, for rows × fields cells
/// per batch.
struct OutputRowInserter {
    private let db: Database
    private let statement: Statement
    private let schema: Schema

    init(db: Database, output: String, schema: Schema) throws {
        self.db = db
        self.schema = schema
        statement = try db.cachedStatement(sql: OutputTable.insertSQL(output: output, schema: schema))
    }

    /// Inserts every row of `submission` whose id is not nil; returns how many. A sample that
    /// already has a row throws GRDB's `DatabaseError` (`SQLITE_CONSTRAINT_PRIMARYKEY`).
    func insert(_ submission: OutputSubmission) throws -> Int {
        let handle = statement.sqliteStatement
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        let cells = schema.fields.map { field in (byteCount: field.fixedByteCount!, scalar: field.isScalar, dtype: field.dtype) }
        return try Self.withBuffers(submission.columns[...], []) { buffers in
            var written = 0
            for (row, id) in submission.ids.enumerated() {
                guard let id else { continue }
                sqlite3_reset(handle)
                try check(sqlite3_bind_int64(handle, 1, id))
                for (column, cell) in cells.enumerated() {
                    let parameter = Int32(column + 2)
                    if cell.scalar {
                        switch ElementEncoding.element(buffers[column], at: row, dtype: cell.dtype) {
                        case .integer(let value): try check(sqlite3_bind_int64(handle, parameter, value))
                        case .real(let value): try check(sqlite3_bind_double(handle, parameter, value))
                        }
                    } else {
                        // The tensor's bytes outlive the step: `withBuffers` holds them all.
                        let start = buffers[column].baseAddress! + row * cell.byteCount
                        try check(sqlite3_bind_blob(handle, parameter, start, Int32(cell.byteCount), nil))
                    }
                }
                let code = sqlite3_step(handle)
                guard code == SQLITE_DONE else { throw failure(code) }
                written += 1
            }
            return written
        }
    }

    /// Calls `body` with the raw bytes of every tensor, all alive at once.
    private static func withBuffers<R>(
        _ tensors: ArraySlice<Tensor>, _ collected: [UnsafeRawBufferPointer], _ body: ([UnsafeRawBufferPointer]) throws -> R
    ) throws -> R {
        guard let first = tensors.first else { return try body(collected) }
        return try first.withUnsafeBytes { raw in try withBuffers(tensors.dropFirst(), collected + [raw], body) }
    }

    private func check(_ code: Int32) throws {
        guard code == SQLITE_OK else { throw failure(code) }
    }

    private func failure(_ code: Int32) -> DatabaseError {
        let extended = db.sqliteConnection.map { sqlite3_extended_errcode($0) } ?? code
        return DatabaseError(resultCode: ResultCode(rawValue: extended), message: db.lastErrorMessage, sql: statement.sql)
    }
}
