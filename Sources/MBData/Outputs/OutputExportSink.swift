/// Where ``Dataset/exportOutput(_:format:to:)`` sends an output's rows, one at a time in
/// `_id` order; nothing is visible at the destination before ``commit(rows:)``.
protocol OutputExportSink {
    /// One row: its `_id` and one buffer per field (the field dtype's little-endian bytes).
    func append(id: Int64, cells: [UnsafeRawBufferPointer]) throws
    /// Puts every file in place, once all `rows` rows were appended.
    func commit(rows: Int) throws
}
