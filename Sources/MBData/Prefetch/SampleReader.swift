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
        try Self.forEachRow(db, ids: wanted, fieldCount: fieldCount) { handle, id in
            let values = (0..<fieldCount).map { SampleRowDecoder.value(handle, Int32(2 + $0)) }
            for (field, value) in zip(fields, values) { try Self.check(value, of: field, id: id) }
            byID[id] = values
        }
        return try ids.map { id in
            guard let id else { return nil }
            guard let values = byID[id] else {
                throw MBDataError(.invalidDataset, "sample \(id) of the plan is missing from the dataset")
            }
            return (id, values)
        }
    }

    /// Runs the query of `wanted` (ascending ids) in chunks under SQLite's limit of bound
    /// variables, calling `body` on each row found (`SampleRowDecoder.forEachRow`).
    static func forEachRow(_ db: Database, ids wanted: [Int64], fieldCount: Int, stepping body: (OpaquePointer, Int64) throws -> Void) throws {
        for chunk in stride(from: 0, to: wanted.count, by: 30_000) {
            let part = Array(wanted[chunk..<min(chunk + 30_000, wanted.count)])
            let placeholders = Array(repeating: "?", count: part.count).joined(separator: ",")
            try SampleRowDecoder.forEachRow(
                db, sql: "SELECT * FROM samples WHERE _id IN (\(placeholders)) ORDER BY _id", arguments: part, fieldCount: fieldCount, stepping: body)
        }
    }

    /// Refuses a stored value the schema does not allow before it reaches collation.
    static func check(_ value: SampleValue, of field: Field, id: Int64) throws {
        if let problem = field.problem(withStored: value) {
            throw MBDataError(.corruptData, "the stored value does not fit the schema: \(problem)", location: "sample \(id)", field: field.name)
        }
    }
}
