import GRDB

extension Dataset {
    /// Writes every row of output `name`, ordered by `_id`, to `path` in `format`: a
    /// directory for ``OutputExportFormat/npy`` (created if missing; `_id.npy` and one
    /// `<field>.npy` per field), a file for ``OutputExportFormat/jsonl`` and
    /// ``OutputExportFormat/csv``.
    ///
    /// The rows are read from one snapshot of the dataset, so an export taken while a job
    /// commits holds whole batches only, and are streamed: memory stays small whatever the
    /// row count. Each file is written under a temporary name and renamed into place when
    /// complete; a failed export leaves the files that were there before.
    ///
    /// - Returns: The number of rows exported.
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when there is no
    ///   output `name` or an NPY `path` is a file; `MBDataError.Code.corruptData` naming the
    ///   row and field when a stored value does not fit its field; `MBDataError.Code.storage`
    ///   when the dataset cannot be read or a file cannot be written.
    public func exportOutput(_ name: String, format: OutputExportFormat, to path: String) async throws -> Int {
        let source = self.path
        return try await read { db in
            let schema = try Self.outputSchema(db, name, path: source)
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(OutputTable.quotedName(of: name))") ?? 0
            let sink = try OutputExportWriter(format: format, path: path, schema: schema, rows: rows)
            var written = 0
            try OutputRowReader(output: name, schema: schema, source: source).forEachRow(db) { id, cells in
                try sink.append(id: id, cells: cells)
                written += 1
            }
            try sink.commit(rows: written)
            return written
        }
    }
}
