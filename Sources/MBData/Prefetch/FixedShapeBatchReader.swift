import GRDB
import GRDBSQLite

/// Reads a batch of a schema whose fields all have a fixed shape straight from SQLite into
/// its safetensors buffer: each stored value is copied once, from SQLite's page to its place
/// in the batch, with no array per row or value, no second collation pass and no copy of the
/// tensors into the buffer. The bytes are those `SampleReader` and `BatchCollator` make
/// together (tests hold them equal); a batch that names a sample of one source twice takes
/// that path.
///
/// A mixture's batch reads each source with one query into its rows' slots of the same
/// buffer, the source's columns taken in the batch schema's field order, and adds `_source`.
struct FixedShapeBatchReader {
    private struct Column {
        var field: Field
        var dtype: String
        var byteCount: Int
        var copy: Copy
    }

    /// How a stored value reaches its row when it has the form the schema gives it; any other
    /// value takes the checked path of `SampleReader` and `BatchCollator`.
    private enum Copy {
        /// A blob of exactly the field's byte count, copied as it is.
        case blob
        /// An `INTEGER` of an int64 scalar, stored as it is.
        case int64
        /// A finite `REAL` of a float64 scalar, stored as it is.
        case float64
        case checked
    }

    private let columns: [Column]
    private let flagsValidity: Bool

    /// Nil unless every field of `schema` has a fixed shape and a fixed-size dtype.
    init?(schema: Schema, flagsValidity: Bool) {
        var columns: [Column] = []
        for field in schema.fields {
            guard !field.dtype.isVariableLength, field.isFixedShape, let byteCount = field.fixedByteCount else { return nil }
            let copy: Copy =
                switch (field.sqlType, field.isScalar ? field.dtype : nil) {
                case ("BLOB", _): .blob
                case ("INTEGER", .int64): .int64
                case ("REAL", .float64): .float64
                default: .checked
                }
            columns.append(Column(field: field, dtype: SafetensorsWriter.dtypeName(field.dtype), byteCount: byteCount, copy: copy))
        }
        self.columns = columns
        self.flagsValidity = flagsValidity
    }

    /// The safetensors buffer of the rows `ids` (nil: a padding row) in this order, with
    /// `metadata`; nil when an id appears twice.
    ///
    /// - Throws: `MBDataError` `.corruptData` for a stored value the schema does not allow,
    ///   `.invalidDataset` for an id missing from the dataset.
    func batch(_ db: Database, ids: [Int64?], metadata: [String: String]) throws -> [UInt8]? {
        try batch(ids: ids, sources: nil, metadata: metadata, orders: [nil]) { _, _, body in try body(db) }
    }

    /// The safetensors buffer of a mixture's rows: row i is sample `ids[i]` of source
    /// `sources[i]` (nil and -1: a padding row), read from that source's database, which
    /// `read(source, body)` opens; `orders[source]` gives, for each field of the batch
    /// schema, its index among the source's fields (nil: the same order); `read` is told how
    /// many ids the source's query reads. With `sources` the batch carries `_source`. Nil
    /// when a source's id appears twice.
    ///
    /// - Throws: What ``batch(_:ids:metadata:)`` throws, and what `read` throws.
    func batch(
        ids: [Int64?], sources: [Int32]?, metadata: [String: String], orders: [[Int]?],
        read: (_ source: Int, _ idCount: Int, _ body: (Database) throws -> Void) throws -> Void
    ) throws -> [UInt8]? {
        let count = ids.count
        var rowOf = [[Int64: Int]](repeating: [:], count: orders.count)
        for (row, id) in ids.enumerated() {
            guard let id else { continue }
            let source = sources.map { Int($0[row]) } ?? 0
            guard rowOf[source].updateValue(row, forKey: id) == nil else { return nil }
        }
        var tensors = columns.map { (name: $0.field.name, dtype: $0.dtype, shape: [count] + $0.field.shape.map { $0! }, byteCount: count * $0.byteCount) }
        tensors.append((name: "_id", dtype: "I64", shape: [count], byteCount: count * 8))
        if flagsValidity { tensors.append((name: "_valid", dtype: "BOOL", shape: [count], byteCount: count)) }
        if sources != nil { tensors.append((name: "_source", dtype: "I32", shape: [count], byteCount: count * 4)) }
        let header = SafetensorsWriter.header(metadata: metadata, tensors: tensors)
        var starts: [Int] = []
        var offset = header.count
        for tensor in tensors {
            starts.append(offset)
            offset += tensor.byteCount
        }
        // Not zero-filled first (that cost a pass over every batch): every byte is written
        // below — the header, each found row's values, padding rows as zeros, as
        // `BatchCollator` writes them, and the id, validity and source tensors whole.
        return try [UInt8](unsafeUninitializedCapacity: offset) { raw, initialized in
            let out = UnsafeMutableRawBufferPointer(raw)
            out.copyBytes(from: header)
            for (index, column) in columns.enumerated() {
                for (row, id) in ids.enumerated() where id == nil {
                    (out.baseAddress! + starts[index] + row * column.byteCount).initializeMemory(as: UInt8.self, repeating: 0, count: column.byteCount)
                }
            }
            var seen = [Bool](repeating: false, count: count)
            for (source, rows) in rowOf.enumerated() where !rows.isEmpty {
                let sqlColumns = (orders[source] ?? Array(columns.indices)).map { Int32(2 + $0) }
                try read(source, rows.count) { db in try copyRows(db, rowOf: rows, sqlColumns: sqlColumns, starts: starts, into: out, seen: &seen) }
            }
            if let missing = zip(ids, seen).first(where: { $0.0 != nil && !$0.1 })?.0 {
                throw MBDataError(.invalidDataset, "sample \(missing) of the plan is missing from the dataset")
            }
            var tensor = columns.count
            for (row, id) in ids.enumerated() {
                out.storeBytes(of: (id ?? -1).littleEndian, toByteOffset: starts[tensor] + row * 8, as: Int64.self)
            }
            if flagsValidity {
                tensor += 1
                for (row, id) in ids.enumerated() { out[starts[tensor] + row] = id == nil ? 0 : 1 }
            }
            if let sources {
                tensor += 1
                for (row, source) in sources.enumerated() {
                    out.storeBytes(of: source.littleEndian, toByteOffset: starts[tensor] + row * 4, as: Int32.self)
                }
            }
            initialized = offset
        }
    }

    /// Copies the stored values of every id in `rowOf` to its row, field i from SQL column
    /// `sqlColumns[i]`, marking the rows found in `seen`.
    private func copyRows(
        _ db: Database, rowOf: [Int64: Int], sqlColumns: [Int32], starts: [Int], into out: UnsafeMutableRawBufferPointer, seen: inout [Bool]
    ) throws {
        let wanted = rowOf.keys.sorted()
        var scratch: [UInt8] = []
        try SampleReader.forEachRow(db, ids: wanted, fieldCount: columns.count) { handle, id in
            guard let row = rowOf[id] else { return }
            seen[row] = true
            // By index, reading single members: a whole `Column` copied per row retained and
            // released its field (3% of a scores job).
            for index in columns.indices {
                let sqlColumn = sqlColumns[index]
                let byteCount = columns[index].byteCount
                let target = out.baseAddress! + starts[index] + row * byteCount
                switch (columns[index].copy, sqlite3_column_type(handle, sqlColumn)) {
                case (.blob, SQLITE_BLOB) where Int(sqlite3_column_bytes(handle, sqlColumn)) == byteCount:
                    if let blob = sqlite3_column_blob(handle, sqlColumn) {
                        target.copyMemory(from: blob, byteCount: byteCount)
                        continue
                    }
                case (.int64, SQLITE_INTEGER):
                    target.storeBytes(of: sqlite3_column_int64(handle, sqlColumn).littleEndian, as: Int64.self)
                    continue
                case (.float64, SQLITE_FLOAT):
                    let value = sqlite3_column_double(handle, sqlColumn)
                    if value.isFinite {
                        target.storeBytes(of: value.bitPattern.littleEndian, as: UInt64.self)
                        continue
                    }
                default:
                    break
                }
                let field = columns[index].field
                let value = SampleRowDecoder.value(handle, sqlColumn)
                try SampleReader.check(value, of: field, id: id)
                scratch.removeAll(keepingCapacity: true)
                BatchCollator.appendFixed(value, of: field, to: &scratch)
                guard scratch.count == byteCount else {
                    throw MBDataError(
                        .corruptData, "the stored value does not fit the schema: \(scratch.count) bytes for \(byteCount)",
                        location: "sample \(id)", field: field.name)
                }
                scratch.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: byteCount) }
            }
        }
    }
}
