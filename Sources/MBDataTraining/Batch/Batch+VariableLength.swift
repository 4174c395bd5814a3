extension Batch {
    /// Each row's bytes of a `bytes` or `string` field — the field's values `name` cut at
    /// `name.offsets` (int64 `[B+1]`), as the collator writes them. A padding row (id -1)
    /// is nil. Throws `.invalidArgument` when the batch has no such field and `.corruptData`
    /// when the offsets do not cut the values into one range per row.
    public func bytes(_ name: String) throws -> [[UInt8]?] {
        guard let values = tensors[name], let offsetTensor = tensors[name + ".offsets"] else {
            throw MBDataError(.invalidArgument, "the batch has no bytes or string field \(name) (tensors \(name) and \(name).offsets)", field: name)
        }
        guard values.dtype == .uint8, offsetTensor.dtype == .int64, offsetTensor.shape.count == 1 else {
            throw MBDataError(
                .invalidArgument, "\(name) is \(values.dtype.rawValue) with \(offsetTensor.dtype.rawValue) offsets, not a bytes or string field",
                field: name)
        }
        let offsets = offsetTensor.int64s()
        let ids = self.ids
        guard offsets.count == ids.count + 1, offsets.first == 0, offsets.last == Int64(values.byteCount),
            zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 })
        else {
            throw MBDataError(
                .corruptData, "\(name).offsets do not cut \(values.byteCount) bytes into \(ids.count) rows", field: name)
        }
        return values.withUnsafeBytes { raw in
            ids.indices.map { row in ids[row] < 0 ? nil : Array(raw[Int(offsets[row])..<Int(offsets[row + 1])]) }
        }
    }

    /// Each row's text of a `string` field (see ``bytes(_:)``); a padding row is nil.
    public func strings(_ name: String) throws -> [String?] {
        try bytes(name).map { $0.map { String(decoding: $0, as: UTF8.self) } }
    }
}
