/// Collates packed rows into one safetensors batch (issue 14 §2):
/// - the packed field → `FIELD` `[R, L]` (padding zero), `segment_ids` int32 `[R, L]`
///   (1…k, 0 = padding) and `positions` int32 `[R, L]`;
/// - `_id` int64 `[R, S]`: the sample of segment j of each row, -1 after a row's last
///   segment (S is the most segments a row of the batch has);
/// - for a mixture, `_source` int32 `[R, S]`: the source of segment j, -1 after a row's
///   last segment;
/// - every other fixed-shape field per segment: `name` `[R, S, …]`, zero after a row's last
///   segment. Variable-length, `bytes` and `string` fields other than the packed one are not
///   carried.
package struct PackedBatchCollator: Sendable {
    package let schema: Schema
    package let spec: PackingSpec
    private let fieldIndex: Int

    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when the schema has no
    ///   packable field named by `spec`.
    package init(schema: Schema, spec: PackingSpec) throws {
        guard let index = schema.index(of: spec.field), schema.fields[index].shape == [nil], schema.fields[index].dtype.itemSize != nil else {
            throw MBDataError(.invalidArgument, "the schema has no variable-length 1-D field \(spec.field) to pack", field: spec.field)
        }
        self.schema = schema
        self.spec = spec
        fieldIndex = index
    }

    /// The batch of `rows`; `sample(position)` returns the id and values (schema order) of
    /// the sample a segment's `sample` names, and `source(position)` (a mixture's) its source.
    package func collate(
        _ rows: [PackedRow], metadata: [String: String] = [:], source: ((Int) throws -> Int32)? = nil,
        sample: (Int) throws -> (id: Int64, values: [SampleValue])
    ) throws -> [UInt8] {
        var writer = SafetensorsWriter()
        writer.metadata = metadata
        let field = schema.fields[fieldIndex]
        let packed = try PackedTensors.tensors(field: field.name, dtype: field.dtype, rows: rows, rowLength: spec.rowLength) { position in
            guard case .blob(let bytes) = try sample(position).values[fieldIndex] else { return [] }
            return bytes
        }
        for tensor in packed {
            writer.add(tensor.name, dtype: SafetensorsWriter.dtypeName(tensor.dtype), shape: tensor.shape, bytes: tensor.bytes)
        }
        let ids = try PackedTensors.perSegment(name: "_id", rows: rows, pad: Int64(-1)) { try sample($0.sample).id }
        let width = ids.shape[1]
        for (index, other) in schema.fields.enumerated() where index != fieldIndex && other.isFixedShape && !other.dtype.isVariableLength {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(rows.count * width * other.fixedByteCount!)
            for row in rows {
                for column in 0..<width {
                    let value = column < row.segments.count ? try sample(row.segments[column].sample).values[index] : nil
                    BatchCollator.appendFixed(value, of: other, to: &bytes)
                }
            }
            writer.add(other.name, dtype: SafetensorsWriter.dtypeName(other.dtype), shape: [rows.count, width] + other.shape.map { $0! }, bytes: bytes)
        }
        writer.add("_id", dtype: "I64", shape: ids.shape, bytes: ids.bytes)
        if let source {
            let sources = try PackedTensors.perSegment(name: "_source", rows: rows, pad: Int32(-1)) { try source($0.sample) }
            writer.add("_source", dtype: "I32", shape: sources.shape, bytes: sources.bytes)
        }
        return writer.encoded()
    }
}
