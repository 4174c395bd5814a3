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
    static func forEachRow(
        _ db: Database, sql: String, arguments: [any DatabaseValueConvertible], fieldCount: Int,
        stepping body: (OpaquePointer, Int64) throws -> Void
    ) throws {
        let statement = try db.makeStatement(sql: sql)
        try statement.setArguments(StatementArguments(arguments))
        try step(statement.sqliteStatement, db, fieldCount: fieldCount, body)
    }

    /// Runs the cached statement of `sql`, its `count` parameters bound to `id(0)…id(count - 1)`
    /// straight as 64-bit integers, and calls `body` as
    /// ``forEachRow(_:sql:arguments:fieldCount:stepping:)`` does. A batch's query binds
    /// tens of ids: GRDB's argument values (an existential array, a `DatabaseValue` each)
    /// showed in a mixture's profile, whose batch binds one list per source.
    static func forEachRow(
        _ db: Database, cachedSQL sql: String, count: Int, id: (Int) -> Int64, fieldCount: Int, stepping body: (OpaquePointer, Int64) throws -> Void
    ) throws {
        let handle = try db.cachedStatement(sql: sql).sqliteStatement
        for index in 0..<count {
            let code = sqlite3_bind_int64(handle, Int32(index + 1), id(index))
            guard code == SQLITE_OK else {
                sqlite3_clear_bindings(handle)
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage)
            }
        }
        try step(handle, db, fieldCount: fieldCount, body)
    }

    /// Steps the bound statement `handle` to its end, calling `body` on each row, and resets it.
    private static func step(_ handle: OpaquePointer, _ db: Database, fieldCount: Int, _ body: (OpaquePointer, Int64) throws -> Void) throws {
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
