import GRDB
import GRDBSQLite

/// Reads a sample row straight from a stepped SQLite statement.
///
/// TEXT is read by its byte length, not as a C string: GRDB's `DatabaseValue` stops a
/// string at its first NUL, and a `string` field may hold U+0000.
enum SampleRowDecoder {
    /// Runs `sql` and calls `body` with each row's `_id` and field values (columns 2…).
    static func forEachRow(
        _ db: Database, sql: String, arguments: [any DatabaseValueConvertible], fieldCount: Int,
        _ body: (Int64, String, [SampleValue]) throws -> Void
    ) throws {
        try forEachRow(
            db, sql: sql, arguments: arguments, fieldCount: fieldCount,
            stepping: { handle, id in
                var values: [SampleValue] = []
                values.reserveCapacity(fieldCount)
                for column in 2..<(2 + Int32(fieldCount)) { values.append(value(handle, column)) }
                try body(id, text(handle, 1), values)
            })
    }

    /// Runs `sql` and calls `body` with the statement standing on each row (read its
    /// columns with `sqlite3_column_*`, field `i` in column `2 + i`) and the row's `_id`.
    /// `cached`: the statement is kept for the next call with the same `sql` (for a query
    /// text that does not grow with its arguments).
    static func forEachRow(
        _ db: Database, sql: String, arguments: [any DatabaseValueConvertible], fieldCount: Int,
        cached: Bool = false, stepping body: (OpaquePointer, Int64) throws -> Void
    ) throws {
        let statement = cached ? try db.cachedStatement(sql: sql) : try db.makeStatement(sql: sql)
        try statement.setArguments(StatementArguments(arguments))
        let handle = statement.sqliteStatement
        defer { sqlite3_reset(handle) }
        let columns = Int(sqlite3_column_count(handle))
        guard columns == 2 + fieldCount else {
            throw MBDataError(
                .corruptData, "the samples table has \(columns) columns; the schema's \(fieldCount) fields need \(2 + fieldCount) (_id, _split, one per field)")
        }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else { throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage) }
            try body(handle, sqlite3_column_int64(handle, 0))
        }
    }

    /// The value of `column` of the row `handle` stands on.
    static func value(_ handle: OpaquePointer, _ column: Int32) -> SampleValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, column))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, column))
        case SQLITE_TEXT: return .text(text(handle, column))
        default:
            let count = Int(sqlite3_column_bytes(handle, column))
            guard let pointer = sqlite3_column_blob(handle, column), count > 0 else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
        }
    }

    private static func text(_ handle: OpaquePointer, _ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}
