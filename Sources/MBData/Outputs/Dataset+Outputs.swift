import Foundation
import GRDB

/// One output of a dataset: a table `outputs_<name>` of the dataset file, keyed by the
/// samples' `_id`, with one column per field of its schema.
public struct OutputInfo: Sendable, Hashable {
    /// The output's name; its table is `outputs_<name>`.
    public let name: String
    /// The output's schema: fixed-shape numeric or bool fields, no key.
    public let schema: Schema
    /// Rows written so far (samples that have an output).
    public let rows: Int
    /// When the output was created (ISO 8601).
    public let createdAt: String
}

extension Dataset {
    /// Creates output `name`: records its schema and creates its empty table `outputs_<name>`.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when `name` is not
    ///   `^[A-Za-z][A-Za-z0-9_]{0,63}$` or an output (or a table) of that name exists,
    ///   ignoring case as SQLite does; `MBDataError.Code.invalidSchema` when a field is
    ///   `string` or `bytes`, has a variable dimension, or the schema has a key;
    ///   `MBDataError.Code.storage` when the file cannot be written.
    public func createOutput(_ name: String, schema: Schema) async throws {
        try OutputSchemaRules.checkName(name)
        try OutputSchemaRules.check(schema)
        let path = self.path
        try await write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT name FROM mbdata_outputs WHERE name = ? COLLATE NOCASE", arguments: [name]) {
                throw MBDataError(.invalidArgument, "an output named \(existing) exists", source: path, parameter: "name")
            }
            if try db.tableExists(OutputTable.name(of: name)) {
                throw MBDataError(
                    .invalidArgument, "the dataset already has a table \(OutputTable.name(of: name)) that is not an output", source: path,
                    parameter: "name")
            }
            try db.execute(sql: OutputTable.createSQL(output: name, schema: schema))
            try db.execute(
                sql: "INSERT INTO mbdata_outputs(name, schema, created_at) VALUES (?, ?, ?)",
                arguments: [name, schema.canonicalJSON(), Timestamp.now()])
        }
    }

    /// Every output of the dataset, by name.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidDataset` when a recorded
    ///   output schema does not parse; `MBDataError.Code.storage` when the file cannot be read.
    public func outputs() async throws -> [OutputInfo] {
        let path = self.path
        return try await read { db in
            try String.fetchAll(db, sql: "SELECT name FROM mbdata_outputs ORDER BY name").map { try Self.outputInfo(db, $0, path: path) }
        }
    }

    /// The output called `name` (exact case).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when there is none;
    ///   `MBDataError.Code.invalidDataset` when its recorded schema does not parse;
    ///   `MBDataError.Code.storage` when the file cannot be read.
    public func output(_ name: String) async throws -> OutputInfo {
        let path = self.path
        return try await read { db in try Self.outputInfo(db, name, path: path) }
    }

    /// Removes output `name`: its table, its jobs and their committed batches, in one transaction.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when there is no
    ///   such output; `MBDataError.Code.storage` when the file cannot be written.
    public func dropOutput(_ name: String) async throws {
        let path = self.path
        try await write { db in
            _ = try Self.outputSchema(db, name, path: path)
            try db.execute(
                sql: "DELETE FROM mbdata_output_batches WHERE job IN (SELECT id FROM mbdata_output_jobs WHERE output = ?)", arguments: [name])
            try db.execute(sql: "DELETE FROM mbdata_output_jobs WHERE output = ?", arguments: [name])
            try db.execute(sql: "DROP TABLE IF EXISTS \(OutputTable.quotedName(of: name))")
            try db.execute(sql: "DELETE FROM mbdata_outputs WHERE name = ?", arguments: [name])
        }
        // Its jobs' ids may be given to new jobs.
        committedBatches.forgetAll()
    }

    /// The recorded schema of output `name`.
    static func outputSchema(_ db: Database, _ name: String, path: String) throws -> Schema {
        guard let text = try String.fetchOne(db, sql: "SELECT schema FROM mbdata_outputs WHERE name = ?", arguments: [name]) else {
            throw MBDataError(.invalidArgument, "no output named \(name)", source: path, parameter: "output")
        }
        guard Schema.isValidFieldName(name) else {
            throw MBDataError(.invalidDataset, "the recorded output name \"\(name)\" is not a valid name", source: path)
        }
        do {
            return try Schema(json: Data(text.utf8))
        } catch let error as MBDataError {
            throw MBDataError(.invalidDataset, "the recorded schema of output \(name) is invalid: \(error.message)", source: path, field: error.field)
        }
    }

    private static func outputInfo(_ db: Database, _ name: String, path: String) throws -> OutputInfo {
        let schema = try outputSchema(db, name, path: path)
        let createdAt = try String.fetchOne(db, sql: "SELECT created_at FROM mbdata_outputs WHERE name = ?", arguments: [name]) ?? ""
        let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(OutputTable.quotedName(of: name))") ?? 0
        return OutputInfo(name: name, schema: schema, rows: rows, createdAt: createdAt)
    }
}
