/// An export in progress: the rows of one output, handed over one at a time in `_id` order,
/// written to `path` in `format` (``Dataset/exportOutput(_:format:to:)`` and exports of
/// outputs held elsewhere use it alike). Nothing is visible at `path` before ``commit(rows:)``.
/// Blocking (file I/O): call it from a worker thread.
package struct OutputExportWriter {
    private let sink: any OutputExportSink

    /// An export of `rows` rows of `schema` to `path`: a directory for
    /// ``OutputExportFormat/npy``, a file for ``OutputExportFormat/jsonl`` and ``OutputExportFormat/csv``.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when an NPY `path` is a
    ///   file; `MBDataError.Code.storage` when a file cannot be created.
    package init(format: OutputExportFormat, path: String, schema: Schema, rows: Int) throws {
        sink =
            switch format {
            case .npy: try OutputNPYSink(directory: path, schema: schema, rows: rows)
            case .jsonl: try OutputTextSink(path: path, schema: schema, csv: false)
            case .csv: try OutputTextSink(path: path, schema: schema, csv: true)
            }
    }

    /// One row: its `_id` and one buffer per field, in schema order, holding the field
    /// dtype's little-endian bytes (a scalar as one element).
    package func append(id: Int64, cells: [UnsafeRawBufferPointer]) throws {
        try sink.append(id: id, cells: cells)
    }

    /// Puts every file in place once all `rows` rows were appended.
    package func commit(rows: Int) throws {
        try sink.commit(rows: rows)
    }
}
