import GRDB

/// How often an output field equals a sample field over the samples that have an output:
/// a model's accuracy when the output is a predicted class and the sample field the label.
public struct OutputAgreement: Sendable, Hashable {
    /// Samples (of the split) with an output row.
    public let rows: Int
    /// Those whose output field equals the sample field.
    public let matching: Int

    /// `matching / rows`; 0 when no sample has an output.
    public var fraction: Double { rows == 0 ? 0 : Double(matching) / Double(rows) }
}

extension Dataset {
    /// Compares scalar output field `field` of output `output` with scalar sample field
    /// `sampleField` over the samples of `split` (nil: every split) that have an output row,
    /// with one SQL join, as `sqlite3` would:
    /// `select count(*), total(s.label = o.pred) from samples s join outputs_preds o using (_id)`.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for an unknown output,
    ///   an unknown or non-scalar field (naming it); `.storage` when the file cannot be read.
    public func outputAgreement(_ output: String, field: String, sampleField: String, split: String? = nil) async throws -> OutputAgreement {
        let info = try await self.output(output)
        let schema = try await self.schema()
        guard info.schema.field(named: field)?.isScalar == true else {
            throw MBDataError(.invalidArgument, "output \(output) has no scalar field \(field)", field: field, parameter: "field")
        }
        guard schema?.field(named: sampleField)?.isScalar == true else {
            throw MBDataError(.invalidArgument, "the samples have no scalar field \(sampleField)", field: sampleField, parameter: "sampleField")
        }
        let quoted = SampleTable.quoted
        let sql = """
            SELECT count(*), total(s.\(quoted(sampleField)) = o.\(quoted(field))) FROM samples s JOIN \(OutputTable.quotedName(of: output)) o USING (_id)
            WHERE ?1 IS NULL OR s._split = ?1
            """
        return try await read { db in
            let row = try Row.fetchOne(db, sql: sql, arguments: [split])
            return OutputAgreement(rows: row?[0] ?? 0, matching: Int(row?[1] as Double? ?? 0))
        }
    }
}
