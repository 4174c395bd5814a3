import GRDB

/// Reads the rows of one batch with one query (ids sorted for locality), then puts them
/// back in plan order.
struct SampleReader {
    let fields: [Field]
    var fieldCount: Int { fields.count }

    init(schema: Schema) {
        fields = schema.fields
    }

    /// Rows for `ids` in the same order; nil ids (padding) stay nil.
    func rows(_ db: Database, ids: [Int64?]) throws -> [BatchCollator.Row] {
        let wanted = ids.compactMap { $0 }.sorted()
        var byID: [Int64: [SampleValue]] = [:]
        byID.reserveCapacity(wanted.count)
        for chunk in stride(from: 0, to: wanted.count, by: 30_000) {
            let part = Array(wanted[chunk..<min(chunk + 30_000, wanted.count)])
            let placeholders = Array(repeating: "?", count: part.count).joined(separator: ",")
            try SampleRowDecoder.forEachRow(
                db, sql: "SELECT * FROM samples WHERE _id IN (\(placeholders)) ORDER BY _id", arguments: part, fieldCount: fieldCount
            ) { id, _, values in
                try check(values, of: id)
                byID[id] = values
            }
        }
        return try ids.map { id in
            guard let id else { return nil }
            guard let values = byID[id] else {
                throw MBDataError(.invalidDataset, "sample \(id) of the plan is missing from the dataset")
            }
            return (id, values)
        }
    }

    /// Refuses a stored value the schema does not allow before it reaches collation.
    private func check(_ values: [SampleValue], of id: Int64) throws {
        for (field, value) in zip(fields, values) {
            if let problem = field.problem(withStored: value) {
                throw MBDataError(
                    .corruptData, "the stored value does not fit the schema: \(problem)", location: "sample \(id)", field: field.name)
            }
        }
    }
}
