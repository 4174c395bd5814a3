/// Packed rows as tensors: the packed field with its `segment_ids` and `positions` (Grain's
/// convention), and per-segment tensors for the packed samples' other fields.
public enum PackedTensors {
    /// The name of the `[rows, L]` int32 tensor of segment ids: 1…k for the row's segments, 0
    /// for padding.
    public static let segmentIDsName = "segment_ids"
    /// The name of the `[rows, L]` int32 tensor of each token's position within its segment
    /// (0 for padding).
    public static let positionsName = "positions"

    /// The packed 1-D field `field` as `dtype` (`[rows.count, rowLength]`), then
    /// ``segmentIDsName`` and ``positionsName``. `values(sample)` returns the little-endian
    /// bytes of every value of input sample `sample` (a stored BLOB as is); each segment takes
    /// its `offset..<offset + length` values. Padding is `padding`, one element's bytes
    /// (default zero).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for a dtype without a
    ///   fixed item size, padding of another size, a row of more than `rowLength` tokens or a
    ///   sample with fewer values than its segment needs; what `values` throws.
    public static func tensors(
        field: String, dtype: DType, rows: [PackedRow], rowLength: Int, padding: [UInt8]? = nil, values: (Int) throws -> [UInt8]
    ) throws -> [Tensor] {
        guard let unit = dtype.itemSize, unit > 0, padding == nil || padding?.count == unit else {
            throw MBDataError(.invalidArgument, "a packed field needs a fixed-size dtype and padding of one element, not \(dtype)", field: field)
        }
        let pad = padding ?? [UInt8](repeating: 0, count: unit)
        var tokens = [UInt8]()
        tokens.reserveCapacity(rows.count * rowLength * unit)
        var segmentIDs = [Int32](repeating: 0, count: rows.count * rowLength)
        var positions = [Int32](repeating: 0, count: rows.count * rowLength)
        for (rowIndex, row) in rows.enumerated() {
            guard row.tokenCount <= rowLength else {
                throw MBDataError(.invalidArgument, "row \(rowIndex) holds \(row.tokenCount) tokens, more than \(rowLength)", field: field)
            }
            var column = rowIndex * rowLength
            for (segmentIndex, segment) in row.segments.enumerated() {
                let sampleBytes = try values(segment.sample)
                let needed = (segment.offset + segment.length) * unit
                guard sampleBytes.count >= needed else {
                    throw MBDataError(
                        .invalidArgument, "sample \(segment.sample) has \(sampleBytes.count / unit) values; its segment needs \(needed / unit)",
                        field: field)
                }
                tokens += sampleBytes[segment.offset * unit..<needed]
                for position in 0..<segment.length {
                    segmentIDs[column + position] = Int32(segmentIndex + 1)
                    positions[column + position] = Int32(position)
                }
                column += segment.length
            }
            for _ in row.tokenCount..<rowLength { tokens += pad }
        }
        let shape = [rows.count, rowLength]
        return [
            Tensor(name: field, dtype: dtype, shape: shape, bytes: tokens),
            try Tensor(name: segmentIDsName, shape: shape, values: segmentIDs),
            try Tensor(name: positionsName, shape: shape, values: positions),
        ]
    }

    /// ``tensors(field:dtype:rows:rowLength:padding:values:)`` from typed values:
    /// `values(sample)` returns every value of input sample `sample`, padding is `pad`.
    ///
    /// - Throws: As the byte form does.
    public static func tensors<Element: TensorElement>(
        field: String, rows: [PackedRow], rowLength: Int, pad: Element, values: (Int) throws -> [Element]
    ) throws -> [Tensor] {
        let padding = try Tensor(name: field, shape: [1], values: [pad]).bytes
        return try tensors(field: field, dtype: Element.dtype, rows: rows, rowLength: rowLength, padding: padding) { sample in
            let sampleValues = try values(sample)
            return try Tensor(name: field, shape: [sampleValues.count], values: sampleValues).bytes
        }
    }

    /// A `[rows.count, S]` tensor with `value(segment)` for segment j of each row in column j,
    /// `pad` after a row's last segment; S is the most segments a row has (at least 1). For
    /// the packed samples' `_id`, `_source` and other fields.
    public static func perSegment<Element: TensorElement>(
        name: String, rows: [PackedRow], pad: Element, value: (PackedSegment) throws -> Element
    ) throws -> Tensor {
        let width = max(1, rows.map(\.segments.count).max() ?? 0)
        var values = [Element](repeating: pad, count: rows.count * width)
        for (rowIndex, row) in rows.enumerated() {
            for (segmentIndex, segment) in row.segments.enumerated() {
                values[rowIndex * width + segmentIndex] = try value(segment)
            }
        }
        return try Tensor(name: name, shape: [rows.count, width], values: values)
    }
}
