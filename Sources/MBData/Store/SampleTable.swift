import GRDB

/// The `samples` table: `_id`, `_split`, then one column per schema field, so plain
/// `sqlite3` queries work on scalars (`select label, count(*) from samples group by 1`).
enum SampleTable {
    static let name = "samples"

    static func quoted(_ identifier: String) -> String { "\"" + identifier + "\"" }

    static func createSQL(for schema: Schema) -> String {
        var columns = ["_id INTEGER PRIMARY KEY", "_split TEXT NOT NULL"]
        columns += schema.fields.map { "\(quoted($0.name)) \($0.sqlType) NOT NULL" }
        var sql = "CREATE TABLE \(name) (\n    " + columns.joined(separator: ",\n    ") + "\n);\n"
        sql += "CREATE INDEX samples_split ON \(name)(_split);\n"
        if let key = schema.key {
            sql += "CREATE UNIQUE INDEX samples_key ON \(name)(\(quoted(key)));\n"
        }
        return sql
    }

    /// `INSERT OR IGNORE` when the schema has a key: a known key adds nothing.
    static func insertSQL(for schema: Schema) -> String {
        let names = ["_split"] + schema.fields.map { quoted($0.name) }
        let verb = schema.key == nil ? "INSERT" : "INSERT OR IGNORE"
        return "\(verb) INTO \(name) (\(names.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: names.count).joined(separator: ", ")))"
    }
}

