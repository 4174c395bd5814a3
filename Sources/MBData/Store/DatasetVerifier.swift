import Foundation
import GRDB

/// What `mbdata verify` found.
public struct VerifyReport: Sendable, Codable {
    /// Samples whose stored values were checked against the schema.
    public var samplesChecked = 0
    /// The first problems, each naming the sample (`_id`) and field.
    public var problems: [String] = []
    /// Problems beyond those listed.
    public var moreProblems = 0
    /// True when no problem was found.
    public var isValid: Bool { problems.isEmpty }
}

extension Dataset {
    /// Runs SQLite's `integrity_check`, checks the meta tables and checks every stored value
    /// against the schema (column type, integer range, blob length for the shape, UTF-8).
    ///
    /// Problems are reported, not thrown: the first `maxProblems` are listed, the rest counted.
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read at all.
    public func verify(maxProblems: Int = 20) async throws -> VerifyReport {
        try await read { db in
            var report = VerifyReport()
            func problem(_ text: String) {
                if report.problems.count < maxProblems { report.problems.append(text) } else { report.moreProblems += 1 }
            }
            for line in try String.fetchAll(db, sql: "PRAGMA integrity_check") where line != "ok" {
                problem("integrity_check: \(line)")
            }
            guard let schema = try Self.storedSchema(db) else {
                if try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE name = 'samples'") != 0 {
                    problem("meta: a samples table exists but no schema is recorded")
                }
                return report
            }
            let columns = try Row.fetchAll(db, sql: "PRAGMA table_info(samples)").map { $0["name"] as String }
            let expected = ["_id", "_split"] + schema.fields.map(\.name)
            guard columns == expected else {
                problem("samples table columns \(columns) do not match the schema's \(expected)")
                return report
            }
            let version = Int(try Self.meta(db, "dataset_version") ?? "") ?? -1
            let lastVersion = try Int.fetchOne(db, sql: "SELECT coalesce(max(version), 0) FROM mbdata_versions") ?? 0
            if version != lastVersion {
                problem("meta: dataset_version \(version) but the version log ends at \(lastVersion)")
            }
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM samples ORDER BY _id")
            while let row = try cursor.next() {
                report.samplesChecked += 1
                let id: Int64 = row["_id"]
                if !(row["_split"] is String) { problem("sample \(id): _split is not text") }
                for (index, field) in schema.fields.enumerated() {
                    if let message = Self.check(row[index + 2] as DatabaseValue, against: field) {
                        problem("sample \(id): field '\(field.name)': \(message)")
                    }
                }
            }
            return report
        }
    }

    /// Nil when the stored value fits the field, else what is wrong (the check batch reads
    /// make, so what `verify` passes collates).
    static func check(_ value: DatabaseValue, against field: Field) -> String? {
        let stored: SampleValue
        switch value.storage {
        case .null: return "expected \(field.sqlType) for \(field.typeDescription), got NULL"
        case .int64(let i): stored = .integer(i)
        case .double(let d): stored = .real(d)
        case .string(let s): stored = .text(s)
        case .blob(let data): stored = .blob([UInt8](data))
        }
        return field.problem(withStored: stored)
    }
}
