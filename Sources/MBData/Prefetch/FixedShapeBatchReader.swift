import GRDB
import GRDBSQLite

/// Reads a batch of a schema whose fields all have a fixed shape straight from SQLite into
/// its safetensors buffer: each stored value is copied once, from SQLite's page to its place
/// in the batch, with no array per row or value, no second collation pass and no copy of the
/// tensors into the buffer. The bytes are those `SampleReader` and `BatchCollator` make
/// together (a test holds them equal); a batch that names a sample twice takes that path.
struct FixedShapeBatchReader {
    private struct Column {
        var field: Field
        var dtype: String
        var byteCount: Int
        /// Stored as a blob of exactly `byteCount` bytes: copied as it is.
        var isBlob: Bool
    }

    private let columns: [Column]
    private let flagsValidity: Bool

    /// Nil unless every field of `schema` has a fixed shape and a fixed-size dtype.
    init?(schema: Schema, flagsValidity: Bool) {
        var columns: [Column] = []
        for field in schema.fields {
            guard !field.dtype.isVariableLength, field.isFixedShape, let byteCount = field.fixedByteCount else { return nil }
            columns.append(
                Column(field: field, dtype: SafetensorsWriter.dtypeName(field.dtype), byteCount: byteCount, isBlob: field.sqlType == "BLOB"))
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
        let count = ids.count
        var rowOf: [Int64: Int] = [:]
        rowOf.reserveCapacity(count)
        for (row, id) in ids.enumerated() {
            guard let id else { continue }
            guard rowOf.updateValue(row, forKey: id) == nil else { return nil }
        }
        var tensors = columns.map { (name: $0.field.name, dtype: $0.dtype, shape: [count] + $0.field.shape.map { $0! }, byteCount: count * $0.byteCount) }
        tensors.append((name: "_id", dtype: "I64", shape: [count], byteCount: count * 8))
        if flagsValidity { tensors.append((name: "_valid", dtype: "BOOL", shape: [count], byteCount: count)) }
        let header = SafetensorsWriter.header(metadata: metadata, tensors: tensors)
        var starts: [Int] = []
        var offset = header.count
        for tensor in tensors {
            starts.append(offset)
            offset += tensor.byteCount
        }
        // Zeroed: padding rows stay zero, as `BatchCollator` writes them.
        var buffer = [UInt8](repeating: 0, count: offset)
        try buffer.withUnsafeMutableBytes { out in
            out.copyBytes(from: header)
            let seen = try copyRows(db, rowOf: rowOf, rows: count, starts: starts, into: out)
            if let missing = zip(ids, seen).first(where: { $0.0 != nil && !$0.1 })?.0 {
                throw MBDataError(.invalidDataset, "sample \(missing) of the plan is missing from the dataset")
            }
            let idStart = starts[columns.count]
            for (row, id) in ids.enumerated() {
                out.storeBytes(of: (id ?? -1).littleEndian, toByteOffset: idStart + row * 8, as: Int64.self)
            }
            if flagsValidity {
                let validStart = starts[columns.count + 1]
                for (row, id) in ids.enumerated() where id != nil { out[validStart + row] = 1 }
            }
        }
        return buffer
    }

    /// Copies the stored values of every id in `rowOf` to its row; returns which of the
    /// `rows` rows were found.
    private func copyRows(_ db: Database, rowOf: [Int64: Int], rows: Int, starts: [Int], into out: UnsafeMutableRawBufferPointer) throws -> [Bool] {
        let wanted = rowOf.keys.sorted()
        var seen = [Bool](repeating: false, count: rows)
        var scratch: [UInt8] = []
        try SampleReader.forEachRow(db, ids: wanted, fieldCount: columns.count) { handle, id in
            guard let row = rowOf[id] else { return }
            seen[row] = true
            for (index, column) in columns.enumerated() {
                let sqlColumn = Int32(2 + index)
                let target = starts[index] + row * column.byteCount
                if column.isBlob, sqlite3_column_type(handle, sqlColumn) == SQLITE_BLOB,
                    Int(sqlite3_column_bytes(handle, sqlColumn)) == column.byteCount, let blob = sqlite3_column_blob(handle, sqlColumn)
                {
                    (out.baseAddress! + target).copyMemory(from: blob, byteCount: column.byteCount)
                    continue
                }
                // Anything else — a scalar, or a value the schema may refuse — takes the
                // checked path of `SampleReader` and `BatchCollator`.
                let value = SampleRowDecoder.value(handle, sqlColumn)
                try SampleReader.check(value, of: column.field, id: id)
                scratch.removeAll(keepingCapacity: true)
                BatchCollator.appendFixed(value, of: column.field, to: &scratch)
                guard scratch.count == column.byteCount else {
                    throw MBDataError(
                        .corruptData, "the stored value does not fit the schema: \(scratch.count) bytes for \(column.byteCount)",
                        location: "sample \(id)", field: column.field.name)
                }
                scratch.withUnsafeBytes { (out.baseAddress! + target).copyMemory(from: $0.baseAddress!, byteCount: column.byteCount) }
            }
        }
        return seen
    }
}
