/// The outputs of one batch, checked against the output's schema and the batch's sample ids
/// (``validate(_:schema:expectedIDs:)``), ready for ``OutputRowInserter``.
package struct OutputSubmission: Sendable {
    /// The batch's sample ids in row order; nil for a padding row, which is not written.
    package let ids: [Int64?]
    /// One tensor per schema field, in schema order, each `[ids.count] + field.shape`.
    package let columns: [Tensor]
    /// The real (non-padding) rows: what a commit writes.
    package var rows: Int { ids.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// Checks a submission: the tensors must be exactly the schema's fields plus an optional
    /// `_id`; each field's dtype equal to the field's, its shape `[R] + field.shape` (R =
    /// `expectedIDs.count`, padding rows included) and its byte count what that shape holds;
    /// `bool` elements 0 or 1; no NaN in a scalar float field (SQLite would store NULL); and
    /// `_id`, when present, `int64 [R]` equal row for row to `expectedIDs` (padding -1).
    ///
    /// Pure: the dataset is not touched (a fuzz target calls it with untrusted tensors).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.schemaMismatch`, its field the tensor
    ///   at fault and its message what was expected and what came.
    package static func validate(_ tensors: [String: Tensor], schema: Schema, expectedIDs: [Int64?]) throws -> OutputSubmission {
        let rowCount = expectedIDs.count
        for field in schema.fields where tensors[field.name] == nil {
            throw MBDataError(.schemaMismatch, "missing field: expected \(field.typeDescription) per row", field: field.name)
        }
        let known = Set(schema.fields.map(\.name) + ["_id"])
        if let unknown = tensors.keys.filter({ !known.contains($0) }).sorted().first {
            throw MBDataError(
                .schemaMismatch, "unknown tensor: expected only \(schema.fields.map(\.name).joined(separator: ", ")) and an optional _id",
                field: unknown)
        }
        var columns: [Tensor] = []
        for field in schema.fields {
            let tensor = tensors[field.name]!
            try checkLayout(tensor, name: field.name, dtype: field.dtype, shape: [rowCount] + field.shape.map { $0! })
            try checkValues(tensor, field: field)
            columns.append(tensor)
        }
        if let ids = tensors["_id"] {
            try checkLayout(ids, name: "_id", dtype: .int64, shape: [rowCount])
            try ids.withUnsafeBytes { raw in
                for (row, expected) in expectedIDs.enumerated() {
                    let got = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: row * 8, as: Int64.self))
                    if got != (expected ?? -1) {
                        let there = expected.map { "the batch's sample there is \($0)" } ?? "the row is padding (-1)"
                        throw MBDataError(.schemaMismatch, "_id row \(row) is \(got), \(there)", field: "_id")
                    }
                }
            }
        }
        return OutputSubmission(ids: expectedIDs, columns: columns)
    }

    /// Dtype, shape, then byte count (a tensor built in code may hold other bytes than its shape says).
    private static func checkLayout(_ tensor: Tensor, name: String, dtype: DType, shape: [Int]) throws {
        guard tensor.dtype == dtype else {
            throw MBDataError(.schemaMismatch, "dtype \(tensor.dtype.rawValue), expected \(dtype.rawValue)", field: name)
        }
        guard tensor.shape == shape else {
            throw MBDataError(.schemaMismatch, "shape \(describe(tensor.shape)), expected \(describe(shape))", field: name)
        }
        // The expected shape comes from the schema (bounded) and the batch size, so this cannot overflow.
        let bytes = shape.reduce(dtype.itemSize!, *)
        guard tensor.byteCount == bytes else {
            throw MBDataError(.schemaMismatch, "\(tensor.byteCount) bytes of data, expected \(bytes) for shape \(describe(shape))", field: name)
        }
    }

    /// The element values SQLite or a reader could not take as they are.
    private static func checkValues(_ tensor: Tensor, field: Field) throws {
        if field.dtype == .bool {
            try tensor.withUnsafeBytes { raw in
                if let index = raw.firstIndex(where: { $0 > 1 }) {
                    throw MBDataError(
                        .schemaMismatch, "bool value \(raw[index]) at row \(index / field.fixedElementCount!), expected 0 or 1", field: field.name)
                }
            }
        } else if field.isScalar && field.dtype.isFloat {
            try tensor.withUnsafeBytes { raw in
                for row in 0..<tensor.elementCount {
                    if case .real(let value) = ElementEncoding.element(raw, at: row, dtype: field.dtype), value.isNaN {
                        throw MBDataError(
                            .schemaMismatch, "NaN at row \(row): a scalar float output is an SQLite REAL, which cannot hold NaN",
                            field: field.name)
                    }
                }
            }
        }
    }

    private static func describe(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}
