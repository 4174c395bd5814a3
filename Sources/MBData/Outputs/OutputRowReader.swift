import GRDB
import GRDBSQLite

/// Steps through an output table in `_id` order and hands over each row's values as the
/// little-endian bytes of their field's dtype (a scalar as one element), checked first: a
/// value edited with `sqlite3` into something its field cannot hold stops the export.
struct OutputRowReader {
    let output: String
    let schema: Schema
    /// The dataset file, for error messages.
    let source: String

    /// Calls `body` with each row's `_id` and one buffer per field, in schema order; the
    /// buffers are valid only during the call.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.corruptData` naming the row and field
    ///   when a stored value does not fit its field; what `body` throws.
    func forEachRow(_ db: Database, _ body: (Int64, [UnsafeRawBufferPointer]) throws -> Void) throws {
        let columns = ["_id"] + schema.fields.map { SampleTable.quoted($0.name) }
        let statement = try db.makeStatement(
            sql: "SELECT \(columns.joined(separator: ", ")) FROM \(OutputTable.quotedName(of: output)) ORDER BY _id")
        let handle = statement.sqliteStatement
        defer { sqlite3_reset(handle) }
        // Each scalar is encoded into its own 8 bytes (the largest item size).
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * schema.fields.count, alignment: 8)
        defer { scratch.deallocate() }
        var cells = [UnsafeRawBufferPointer](repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: schema.fields.count)
        var encoded: [UInt8] = []
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else { throw DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage) }
            let id = sqlite3_column_int64(handle, 0)
            for (index, field) in schema.fields.enumerated() {
                let column = Int32(index + 1)
                if field.isScalar {
                    encoded.removeAll(keepingCapacity: true)
                    try encodeScalar(handle, column, field, id: id, into: &encoded)
                    let slot = UnsafeMutableRawBufferPointer(rebasing: scratch[(index * 8)..<(index * 8 + encoded.count)])
                    slot.copyBytes(from: encoded)
                    cells[index] = UnsafeRawBufferPointer(slot)
                } else {
                    cells[index] = try blob(handle, column, field, id: id)
                }
            }
            try body(id, cells)
        }
    }

    private func encodeScalar(_ handle: OpaquePointer, _ column: Int32, _ field: Field, id: Int64, into out: inout [UInt8]) throws {
        let number: ElementEncoding.Number
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: number = .integer(sqlite3_column_int64(handle, column))
        case SQLITE_FLOAT: number = .real(sqlite3_column_double(handle, column))
        case let type: throw corrupt("expected \(field.sqlType) for \(field.typeDescription), got \(Self.typeName(type))", id: id, field: field)
        }
        do {
            try ElementEncoding.append(number, as: field.dtype, to: &out)
        } catch {
            throw corrupt("value \(number.text) is outside \(field.dtype.rawValue)", id: id, field: field)
        }
    }

    private func blob(_ handle: OpaquePointer, _ column: Int32, _ field: Field, id: Int64) throws -> UnsafeRawBufferPointer {
        let type = sqlite3_column_type(handle, column)
        guard type == SQLITE_BLOB else {
            throw corrupt("expected BLOB for \(field.typeDescription), got \(Self.typeName(type))", id: id, field: field)
        }
        // The pointer first, then the length, as SQLite's documentation asks.
        let pointer = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        let expected = field.fixedByteCount ?? 0
        guard count == expected, let pointer else {
            throw corrupt("expected \(expected) bytes for \(field.typeDescription), got \(count)", id: id, field: field)
        }
        let bytes = UnsafeRawBufferPointer(start: pointer, count: count)
        if field.dtype == .bool, let index = bytes.firstIndex(where: { $0 > 1 }) {
            throw corrupt("element \(index) is \(bytes[index]), not 0 or 1", id: id, field: field)
        }
        return bytes
    }

    private func corrupt(_ message: String, id: Int64, field: Field) -> MBDataError {
        MBDataError(.corruptData, "output \(output), row _id \(id): \(message)", source: source, field: field.name)
    }

    private static func typeName(_ type: Int32) -> String {
        switch type {
        case SQLITE_INTEGER: "INTEGER"
        case SQLITE_FLOAT: "REAL"
        case SQLITE_TEXT: "TEXT"
        case SQLITE_BLOB: "BLOB"
        default: "NULL"
        }
    }
}
