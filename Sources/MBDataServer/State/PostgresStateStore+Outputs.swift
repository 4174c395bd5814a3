import Foundation
import HTTPTypes
import Logging
import MBData
import MBDataWire
import NIOCore
import PostgresNIO

/// Inference outputs in PostgreSQL (DESIGN decision 15): when the daemons of a cluster share
/// this store, an inference job is a cursor of `mbdata.cursors` (mode `infer`) leased like a
/// share group's (``lease(cursor:epoch:seconds:firstFree:)``), and its outputs go to one
/// table per (dataset, output) in the schema `mbdata` (``PostgresOutputTable``). A batch's
/// rows and its ack commit in one transaction: exactly once across daemons.
extension PostgresStateStore {
    /// The table of `output` of `dataset` with `schema`, registered and created when new.
    ///
    /// - Throws: `409 output_mismatch` when the output is registered with another schema
    ///   (another daemon's copy of the dataset defines it otherwise); `.storage` errors.
    func openOutput(dataset: String, output: String, schema: Schema) async throws -> PostgresOutputTable {
        let canonical = schema.canonicalJSON()
        return try await transaction("output \(output) of dataset \(dataset)") { connection, logger in
            if let stored = try await Self.registeredOutput(dataset: dataset, output: output, connection, logger) {
                guard stored.schema == canonical else {
                    throw ServeError(
                        .conflict, "output_mismatch",
                        "output \(output) of dataset \(dataset) is stored in the state database with another schema than this daemon's dataset file defines: \(stored.schema)"
                    )
                }
                return PostgresOutputTable(name: stored.table, schema: schema)
            }
            var taken = false
            for try await _ in try await connection.query(
                "SELECT 1 FROM mbdata.outputs WHERE table_name = \(PostgresOutputTable.name(dataset: dataset, output: output))", logger: logger)
            {
                taken = true
            }
            let table = PostgresOutputTable(name: PostgresOutputTable.name(dataset: dataset, output: output, taken: taken), schema: schema)
            // The registry row first: a daemon registering the same output at once waits on
            // its key until this transaction ends, then finds it.
            var registered = false
            for try await _ in try await connection.query(
                """
                INSERT INTO mbdata.outputs (dataset, output, schema, table_name) VALUES (\(dataset), \(output), \(canonical), \(table.name))
                ON CONFLICT (dataset, output) DO NOTHING RETURNING 1
                """, logger: logger)
            {
                registered = true
            }
            guard registered else {
                guard let stored = try await Self.registeredOutput(dataset: dataset, output: output, connection, logger), stored.schema == canonical
                else {
                    throw ServeError(.conflict, "output_mismatch", "output \(output) of dataset \(dataset) was registered with another schema meanwhile")
                }
                return PostgresOutputTable(name: stored.table, schema: schema)
            }
            try await connection.query(PostgresQuery(unsafeSQL: table.createSQL), logger: logger)
            return table
        }
    }

    /// Stores the cursor of an inference job of `dataset`'s `output` unless it exists, with
    /// the rows the job is to write; returns the stored cursor.
    func openInferenceJob(_ fresh: CursorState, output: String, expectedRows: Int) async throws -> CursorState {
        let json = String(decoding: try WireJSON.encode(fresh), as: UTF8.self)
        return try await transaction("inference job \(fresh.cursor)") { connection, logger in
            try await connection.query(
                "INSERT INTO mbdata.cursors (id, state) VALUES (\(fresh.cursor), \(json)::jsonb) ON CONFLICT (id) DO NOTHING", logger: logger)
            try await connection.query(
                """
                INSERT INTO mbdata.output_jobs (cursor, dataset, output, expected_rows)
                VALUES (\(fresh.cursor), \(fresh.dataset), \(output), \(expectedRows)) ON CONFLICT (cursor) DO NOTHING
                """, logger: logger)
            return try await Self.storedCursor(fresh.cursor, locking: false, connection, logger) ?? fresh
        }
    }

    /// The batch `lease` holds for `cursor` while it has not expired; otherwise `409
    /// already_done` when the lease committed its batch or the batch is committed, else
    /// `409 lease_expired`. A check before a submission's body is read; the commit checks again.
    func leasedBatch(_ lease: UInt64, cursor: String) async throws -> Int {
        try await transaction("lease \(lease)") { connection, logger in
            var held: Int?
            for try await batch in try await connection.query(
                """
                SELECT batch FROM mbdata.leases
                WHERE id = \(Int64(clamping: lease)) AND cursor = \(cursor) AND expires_at > statement_timestamp()
                """, logger: logger
            ).decode(Int.self) {
                held = batch
            }
            guard let held else { throw try await Self.refusal(lease: lease, cursor: cursor, connection, logger) }
            return held
        }
    }

    /// Writes `submission` — the outputs of `batch`, which `lease` holds — into `table` and
    /// acks the batch, in one transaction; returns the rows written and the cursor after.
    /// Refused, writing nothing: `409 lease_expired` when the lease expired (on the
    /// database's clock) or is unknown, `409 already_done` when its batch is committed.
    func commitOutputs(
        _ submission: OutputSubmission, batch: Int, lease: UInt64, cursor: String, table: PostgresOutputTable
    ) async throws -> (rows: Int, state: CursorState) {
        let insert = try table.insertQuery(submission)
        return try await transaction("the outputs of batch \(batch) of \(cursor)") { connection, logger in
            let acked: (state: CursorState, held: [(lease: UInt64, epoch: Int, batch: Int)])
            do {
                acked = try await Self.acknowledge(cursor: cursor, leases: [lease], connection, logger)
            } catch let refused as ServeError where refused.code == "lease_expired" {
                throw try await Self.refusal(lease: lease, cursor: cursor, connection, logger)
            }
            guard acked.held.map(\.batch) == [batch] else {
                throw ServeError(.conflict, "lease_expired", "lease \(lease) of cursor \(cursor) holds another batch than \(batch)")
            }
            var recorded = false
            var rows = 0
            for try await count in try await connection.query(insert, logger: logger).decode(Int.self) { rows = count }
            for try await _ in try await connection.query(
                """
                INSERT INTO mbdata.output_batches (cursor, batch, lease, rows) VALUES (\(cursor), \(batch), \(Int64(clamping: lease)), \(rows))
                ON CONFLICT (cursor, batch) DO NOTHING RETURNING 1
                """, logger: logger)
            {
                recorded = true
            }
            // Rolled back, rows and ack alike.
            guard recorded else { throw ServeError.alreadyDone(batch: batch, lease: lease) }
            return (rows, acked.state)
        }
    }

    /// Why `lease` holds nothing for `cursor`: its batch committed (`already_done`) or not.
    private static func refusal(lease: UInt64, cursor: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> ServeError {
        var committed: Int?
        for try await batch in try await connection.query(
            "SELECT batch FROM mbdata.output_batches WHERE lease = \(Int64(clamping: lease)) AND cursor = \(cursor)", logger: logger
        ).decode(Int.self) {
            committed = batch
        }
        if let committed { return ServeError.alreadyDone(batch: committed, lease: lease) }
        return ServeError.leaseExpired(lease, cursor: cursor)
    }

    private static func registeredOutput(
        dataset: String, output: String, _ connection: PostgresConnection, _ logger: Logger
    ) async throws -> (schema: String, table: String)? {
        var found: (schema: String, table: String)?
        for try await (schema, table) in try await connection.query(
            "SELECT schema, table_name FROM mbdata.outputs WHERE dataset = \(dataset) AND output = \(output)", logger: logger
        ).decode((String, String).self) {
            found = (schema, table)
        }
        return found
    }
}
