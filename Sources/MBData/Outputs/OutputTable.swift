/// The `outputs_<name>` table of one output: `_id INTEGER PRIMARY KEY` (a sample's `_id`),
/// then one `NOT NULL` column per field, typed and encoded as `samples` columns are, so
/// `select … from samples join outputs_<name> using (_id)` works in plain `sqlite3`.
enum OutputTable {
    /// The table of output `output`.
    static func name(of output: String) -> String { "outputs_" + output }

    /// The table name quoted for SQL.
    static func quotedName(of output: String) -> String { SampleTable.quoted(name(of: output)) }

    static func createSQL(output: String, schema: Schema) -> String {
        let columns = ["_id INTEGER PRIMARY KEY"] + schema.fields.map { "\(SampleTable.quoted($0.name)) \($0.sqlType) NOT NULL" }
        return "CREATE TABLE \(quotedName(of: output)) (\n    " + columns.joined(separator: ",\n    ") + "\n)"
    }

    /// Parameters: `_id` first, then the fields in schema order.
    static func insertSQL(output: String, schema: Schema) -> String {
        let names = ["_id"] + schema.fields.map { SampleTable.quoted($0.name) }
        let placeholders = Array(repeating: "?", count: names.count).joined(separator: ", ")
        return "INSERT INTO \(quotedName(of: output)) (\(names.joined(separator: ", "))) VALUES (\(placeholders))"
    }
}
