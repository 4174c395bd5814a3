import GRDB

/// A sample as read back from the store.
public struct StoredSample: Sendable, Hashable {
    public var id: Int64
    public var split: String
    /// Values in the schema's field order.
    public var values: [SampleValue]
}

extension Dataset {
    /// Samples in id order, optionally of one split; for inspection and tests, not for
    /// training loops (the prefetcher reads in batches).
    public func samples(split: String? = nil, limit: Int = Int.max) async throws -> [StoredSample] {
        try await read { db in
            guard let schema = try Self.storedSchema(db) else { return [] }
            let filter = split == nil ? "" : "WHERE _split = ?"
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM samples \(filter) ORDER BY _id LIMIT ?",
                arguments: StatementArguments(
                    (split.map { [$0.databaseValue] } ?? []) + [Int64(clamping: limit).databaseValue]))
            return rows.map { row in
                StoredSample(
                    id: row["_id"], split: row["_split"],
                    values: schema.fields.indices.map { SampleValue(row[$0 + 2] as DatabaseValue) })
            }
        }
    }
}

extension SampleValue {
    init(_ value: DatabaseValue) {
        switch value.storage {
        case .int64(let i): self = .integer(i)
        case .double(let d): self = .real(d)
        case .string(let s): self = .text(s)
        case .blob(let data): self = .blob([UInt8](data))
        case .null: self = .blob([])
        }
    }
}
