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
        var rows = [BatchCollator.Row](repeating: nil, count: ids.count)
        let slots = ids.indices.filter { ids[$0] != nil }
        try read(db, ids: slots.map { ids[$0]! }, into: &rows, at: slots)
        return rows
    }

    /// Reads the row of `ids[i]` into `rows[slots[i]]` with one query (ids sorted for
    /// locality; an id may repeat). With `order`, the values are put in another schema's
    /// field order: its field `f` is this schema's field `order[f]` (a mixture's batch schema).
    ///
    /// - Throws: `MBDataError` with `.invalidDataset` naming an id that is not in the table,
    ///   `.corruptData` for a stored value the schema does not allow.
    func read(_ db: Database, ids: [Int64], into rows: inout [BatchCollator.Row], at slots: [Int], order: [Int]? = nil) throws {
        let wanted = zip(ids, slots).sorted { $0.0 < $1.0 }
        var next = wanted.startIndex
        var filled = 0
        let fieldOrder = order ?? Array(fields.indices)
        try Self.forEachRow(db, ids: wanted.map(\.0), fieldCount: fieldCount) { handle, id in
            while next < wanted.endIndex, wanted[next].0 < id { next += 1 }
            guard next < wanted.endIndex, wanted[next].0 == id else { return }
            let values = try fieldOrder.map { field in
                let value = SampleRowDecoder.value(handle, Int32(2 + field))
                try Self.check(value, of: fields[field], id: id)
                return value
            }
            while next < wanted.endIndex, wanted[next].0 == id {
                rows[wanted[next].1] = (id, values)
                next += 1
                filled += 1
            }
        }
        if filled < wanted.count, let missing = wanted.first(where: { rows[$0.1] == nil }) {
            throw MBDataError(.invalidDataset, "sample \(missing.0) of the plan is missing from the dataset")
        }
    }

    /// Calls `body` once on each row of `wanted` (ascending ids, perhaps repeated) found in
    /// the table (`SampleRowDecoder.forEachRow`). Ids that fill at least half of the range
    /// they span (a plan without shuffle, an inference job) are read with one range scan,
    /// which walks the table's pages in order; others with `IN` lists under SQLite's limit
    /// of bound variables, one B-tree search per id.
    static func forEachRow(_ db: Database, ids wanted: [Int64], fieldCount: Int, stepping body: (OpaquePointer, Int64) throws -> Void) throws {
        guard let first = wanted.first, let last = wanted.last else { return }
        let (span, overflow) = last.subtractingReportingOverflow(first)
        if !overflow, span < Int64(wanted.count) * 2 {
            var next = wanted.startIndex
            try SampleRowDecoder.forEachRow(
                db, cachedSQL: "SELECT * FROM samples WHERE _id BETWEEN ? AND ? ORDER BY _id", count: 2, id: { $0 == 0 ? first : last },
                fieldCount: fieldCount
            ) { handle, id in
                while next < wanted.endIndex, wanted[next] < id { next += 1 }
                guard next < wanted.endIndex, wanted[next] == id else { return }
                try body(handle, id)
            }
            return
        }
        for chunk in stride(from: wanted.startIndex, to: wanted.endIndex, by: idsPerQuery) {
            let part = wanted[chunk..<min(chunk + idsPerQuery, wanted.endIndex)]
            // The list is padded (repeating its last id) to one of a few lengths, so each
            // connection prepares the query once per length and then reuses it: a mixture's
            // batch runs one small query per source, and parsing them showed in its profile.
            let length = Self.listLength(part.count)
            let (start, last) = (part.startIndex, part[part.endIndex - 1])
            try SampleRowDecoder.forEachRow(
                db, cachedSQL: Self.inListQuery(length), count: length, id: { start + $0 < part.endIndex ? part[start + $0] : last },
                fieldCount: fieldCount, stepping: body)
        }
    }

    /// The most ids one query of ``forEachRow(_:ids:fieldCount:stepping:)`` binds.
    static let idsPerQuery = 30_000

    /// The padded length of an `IN` list of `count` ids (1…``idsPerQuery``): the next power
    /// of two, at most ``idsPerQuery`` — but from 8 to 64 the next multiple of 8, where a
    /// mixture's per-source lists fall: SQLite inserts every bound value, padding included,
    /// into the list's ephemeral index.
    static func listLength(_ count: Int) -> Int {
        if count > 8 && count <= 64 { return (count + 7) / 8 * 8 }
        return min(1 << (Int.bitWidth - (count - 1).leadingZeroBitCount), idsPerQuery)
    }

    /// The query of the rows whose ids are among `length` bound values, ascending.
    private static func inListQuery(_ length: Int) -> String {
        "SELECT * FROM samples WHERE _id IN (" + String(repeating: "?,", count: length - 1) + "?) ORDER BY _id"
    }

    /// Refuses a stored value the schema does not allow before it reaches collation.
    static func check(_ value: SampleValue, of field: Field, id: Int64) throws {
        if let problem = field.problem(withStored: value) {
            throw MBDataError(.corruptData, "the stored value does not fit the schema: \(problem)", location: "sample \(id)", field: field.name)
        }
    }
}
