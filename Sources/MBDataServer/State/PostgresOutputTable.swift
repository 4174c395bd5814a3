import Foundation
import MBData
import MBDataWire
import NIOCore
import PostgresNIO

/// The table of one inference output in PostgreSQL: `mbdata."<name>"`, with `_id bigint
/// PRIMARY KEY` (a sample's `_id`) and one `NOT NULL` column per field of the output's schema.
///
/// A scalar field is a column of its dtype's PostgreSQL type — `boolean`; `smallint` for
/// `uint8`, `int8` and `int16`; `integer`; `bigint`; `real` for `float16`, `bfloat16` and
/// `float32`; `double precision` — each of which holds every value of the dtype exactly. A
/// field with a shape is `bytea`: its elements' little-endian bytes in row-major order, as
/// the dataset file's `BLOB` holds them. An export reads every value back bit for bit.
///
/// The name is `outputs_<dataset>_<output>` when that is a lower-case identifier of at most 63
/// bytes (so it needs no quotes in `psql`), else `outputs_` and a hash of both names; the
/// registry `mbdata.outputs` says which (``PostgresStateStore/outputSummaries(dataset:)``).
struct PostgresOutputTable: Sendable {
    /// The table's name in the schema `mbdata`, unquoted.
    let name: String
    let schema: Schema

    /// PostgreSQL truncates a longer identifier.
    private static let maximumNameBytes = 63

    /// The name a new output's table takes: readable when it can be, else hashed (also when
    /// the readable one is another output's, `taken`).
    static func name(dataset: String, output: String, taken: Bool = false) -> String {
        let readable = "outputs_\(dataset)_\(output)"
        let plain = readable.utf8.count <= maximumNameBytes
            && readable.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
        return plain && !taken ? readable : CursorState.hashedID(prefix: "outputs_", key: dataset + "|" + output)
    }

    /// An identifier in double quotes, its quotes doubled.
    static func quoted(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `mbdata."<name>"`.
    var qualifiedName: String { "mbdata." + Self.quoted(name) }

    /// The column type of `field`.
    static func columnType(_ field: Field) -> String {
        guard field.isScalar else { return "bytea" }
        switch field.dtype {
        case .bool: return "boolean"
        case .uint8, .int8, .int16: return "smallint"
        case .int32: return "integer"
        case .int64: return "bigint"
        case .float16, .bfloat16, .float32: return "real"
        case .float64: return "double precision"
        case .bytes, .string: return "bytea"
        }
    }

    var createSQL: String {
        let columns = ["_id bigint PRIMARY KEY"] + schema.fields.map { "\(Self.quoted($0.name)) \(Self.columnType($0)) NOT NULL" }
        return "CREATE TABLE \(qualifiedName) (" + columns.joined(separator: ", ") + ")"
    }

    /// Inserts the real rows of `submission` — one array per column, unnested — except
    /// those whose sample has a row already (written by another job of the output, which
    /// keeps it); answers the count inserted.
    func insertQuery(_ submission: OutputSubmission) throws -> PostgresQuery {
        let rows = submission.ids.indices.filter { submission.ids[$0] != nil }
        var bindings = PostgresBindings(capacity: schema.fields.count + 1)
        bindings.append(rows.map { submission.ids[$0]! })
        for (field, tensor) in zip(schema.fields, submission.columns) {
            try tensor.withUnsafeBytes { raw in try Self.bind(raw, field: field, rows: rows, to: &bindings) }
        }
        let columns = ["_id"] + schema.fields.map { Self.quoted($0.name) }
        let arrays = (["bigint"] + schema.fields.map(Self.columnType)).enumerated().map { "$\($0.offset + 1)::\($0.element)[]" }
        return PostgresQuery(
            unsafeSQL: """
                WITH written AS (
                    INSERT INTO \(qualifiedName) (\(columns.joined(separator: ", ")))
                    SELECT * FROM unnest(\(arrays.joined(separator: ", ")))
                    ON CONFLICT (_id) DO NOTHING RETURNING 1)
                SELECT count(*)::bigint FROM written
                """, binds: bindings)
    }

    /// One column's array: the scalars as their column type's Swift values, or each row's bytes.
    private static func bind(_ raw: UnsafeRawBufferPointer, field: Field, rows: [Int], to bindings: inout PostgresBindings) throws {
        func numbers(_ row: Int) -> ElementEncoding.Number { ElementEncoding.element(raw, at: row, dtype: field.dtype) }
        guard field.isScalar else {
            let size = field.fixedByteCount ?? 0
            bindings.append(rows.map { ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: raw[($0 * size)..<(($0 + 1) * size)])) })
            return
        }
        switch field.dtype {
        case .bool: bindings.append(rows.map { raw[$0] != 0 })
        case .uint8, .int8, .int16: bindings.append(try rows.map { Int16(try ElementEncoding.integer(numbers($0), as: field.dtype)) })
        case .int32: bindings.append(try rows.map { Int32(try ElementEncoding.integer(numbers($0), as: field.dtype)) })
        case .int64: bindings.append(try rows.map { try ElementEncoding.integer(numbers($0), as: field.dtype) })
        case .float16, .bfloat16, .float32: bindings.append(try rows.map { Float(try ElementEncoding.real(numbers($0), as: field.dtype)) })
        case .float64: bindings.append(try rows.map { try ElementEncoding.real(numbers($0), as: field.dtype) })
        case .bytes, .string: throw MBDataError(.schemaMismatch, "an output field cannot be \(field.dtype.rawValue)", field: field.name)
        }
    }

    /// Every row in `_id` order.
    var selectSQL: String {
        "SELECT " + (["_id"] + schema.fields.map { Self.quoted($0.name) }).joined(separator: ", ") + " FROM \(qualifiedName) ORDER BY _id"
    }

    /// A row of ``selectSQL`` as an export takes it: the `_id`, and each field's
    /// little-endian bytes appended to `bytes` (cleared first), their ranges in `cells`.
    ///
    /// - Throws: `MBDataError` `.corruptData` naming the row and field when a stored value
    ///   does not fit its field (a table edited by hand).
    func decode(_ row: PostgresRow, bytes: inout [UInt8], cells: inout [Range<Int>]) throws -> Int64 {
        bytes.removeAll(keepingCapacity: true)
        cells.removeAll(keepingCapacity: true)
        var columns = row.makeIterator()
        guard let first = columns.next() else { throw MBDataError(.corruptData, "an output row without its _id", source: qualifiedName) }
        let id = try first.decode(Int64.self)
        for field in schema.fields {
            guard let cell = columns.next() else { throw corrupt("the column is missing", id: id, field: field) }
            let start = bytes.count
            do {
                try Self.append(cell, field: field, to: &bytes)
            } catch let error as MBDataError {
                throw corrupt(error.message, id: id, field: field)
            } catch {
                throw corrupt("\(error)", id: id, field: field)
            }
            cells.append(start..<bytes.count)
        }
        return id
    }

    private static func append(_ cell: PostgresCell, field: Field, to bytes: inout [UInt8]) throws {
        guard field.isScalar else {
            let stored = try cell.decode(ByteBuffer.self)
            let expected = field.fixedByteCount ?? 0
            guard stored.readableBytes == expected else {
                throw MBDataError(.corruptData, "expected \(expected) bytes for \(field.typeDescription), got \(stored.readableBytes)")
            }
            let start = bytes.count
            bytes += stored.readableBytesView
            if field.dtype == .bool, let index = bytes[start...].firstIndex(where: { $0 > 1 }) {
                throw MBDataError(.corruptData, "element \(index - start) is \(bytes[index]), not 0 or 1")
            }
            return
        }
        let number: ElementEncoding.Number =
            switch field.dtype {
            case .bool: .integer(try cell.decode(Bool.self) ? 1 : 0)
            case .uint8, .int8, .int16: .integer(Int64(try cell.decode(Int16.self)))
            case .int32: .integer(Int64(try cell.decode(Int32.self)))
            case .int64: .integer(try cell.decode(Int64.self))
            case .float16, .bfloat16, .float32: .real(Double(try cell.decode(Float.self)))
            case .float64, .bytes, .string: .real(try cell.decode(Double.self))
            }
        try ElementEncoding.append(number, as: field.dtype, to: &bytes)
    }

    private func corrupt(_ message: String, id: Int64, field: Field) -> MBDataError {
        MBDataError(.corruptData, "output table \(name), row _id \(id): \(message)", source: qualifiedName, field: field.name)
    }
}
