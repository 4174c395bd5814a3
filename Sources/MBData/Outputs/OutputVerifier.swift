import Foundation
import GRDB

extension Dataset {
    /// Checks every output, in one read: the output tables against their schemas (columns,
    /// each value's storage class, integer range and blob length), that every `_id` of an
    /// output is a sample's, and that each job's committed batches have their rows — as many
    /// as recorded, at the ids the job's plan puts in the batch. Also finds jobs of no output
    /// and batch records of no job.
    ///
    /// Problems are returned (the first ``OutputVerifier/maxProblems``, then one that counts
    /// the rest), not thrown.
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read at all.
    package func verifyOutputs() async throws -> [MBDataError] {
        let path = self.path
        return try await read { db in
            var verifier = OutputVerifier(db: db, path: path)
            try verifier.run()
            return verifier.report()
        }
    }
}

/// The checks of ``Dataset/verifyOutputs()`` over one read transaction.
struct OutputVerifier {
    static let maxProblems = 50

    private let db: Database
    private let path: String
    private var problems: [MBDataError] = []
    private var uncounted = 0

    init(db: Database, path: String) {
        self.db = db
        self.path = path
    }

    func report() -> [MBDataError] {
        guard uncounted > 0 else { return problems }
        return problems + [MBDataError(.corruptData, "\(uncounted) more problems with outputs", source: path)]
    }

    private mutating func problem(_ code: MBDataError.Code, _ message: String, location: String? = nil, field: String? = nil) {
        guard problems.count < Self.maxProblems else {
            uncounted += 1
            return
        }
        problems.append(MBDataError(code, message, source: path, location: location, field: field))
    }

    mutating func run() throws {
        for job in try Row.fetchAll(db, sql: "SELECT id, output FROM mbdata_output_jobs WHERE output NOT IN (SELECT name FROM mbdata_outputs)") {
            problem(.invalidDataset, "inference job \(job["id"] as Int64) belongs to output \(job["output"] as String), which does not exist")
        }
        let strayBatches = try Int.fetchOne(db, sql: "SELECT count(*) FROM mbdata_output_batches WHERE job NOT IN (SELECT id FROM mbdata_output_jobs)") ?? 0
        if strayBatches > 0 { problem(.invalidDataset, "\(strayBatches) committed batch records belong to no inference job") }
        let hasSamples = try db.tableExists(SampleTable.name)
        for name in try String.fetchAll(db, sql: "SELECT name FROM mbdata_outputs ORDER BY name") {
            let schema: Schema
            do {
                schema = try Dataset.outputSchema(db, name, path: path)
                try OutputSchemaRules.check(schema)
            } catch let error as MBDataError {
                problem(.invalidDataset, "output \(name): \(error.message)", field: error.field)
                continue
            }
            guard try checkColumns(of: name, schema: schema) else { continue }
            try checkValues(of: name, schema: schema)
            try checkIDs(of: name, hasSamples: hasSamples)
            try checkJobs(of: name)
        }
    }

    /// False when the table is missing or its columns are not the schema's.
    private mutating func checkColumns(of output: String, schema: Schema) throws -> Bool {
        let table = OutputTable.name(of: output)
        guard try db.tableExists(table) else {
            problem(.invalidDataset, "output \(output) has no table \(table)")
            return false
        }
        let columns = try Row.fetchAll(db, sql: "PRAGMA table_info(\(OutputTable.quotedName(of: output)))").map { ($0["name"] as String, ($0["type"] as String).uppercased()) }
        let expected = [("_id", "INTEGER")] + schema.fields.map { ($0.name, $0.sqlType) }
        guard columns.elementsEqual(expected, by: { $0.0 == $1.0 && $0.1 == $1.1 }) else {
            let describe = { (list: [(String, String)]) in list.map { "\($0.0) \($0.1)" }.joined(separator: ", ") }
            problem(.invalidDataset, "table \(table) has columns (\(describe(columns))), its schema asks for (\(describe(expected)))")
            return false
        }
        return true
    }

    private mutating func checkValues(of output: String, schema: Schema) throws {
        let table = OutputTable.name(of: output)
        let rows = try Row.fetchCursor(db, sql: "SELECT * FROM \(OutputTable.quotedName(of: output)) ORDER BY _id")
        while let row = try rows.next() {
            let id: Int64 = row[0]
            for (index, field) in schema.fields.enumerated() {
                if let message = Dataset.check(row[index + 1] as DatabaseValue, against: field) {
                    problem(.corruptData, message, location: "\(table) _id \(id)", field: field.name)
                }
            }
        }
    }

    private mutating func checkIDs(of output: String, hasSamples: Bool) throws {
        let table = OutputTable.name(of: output)
        let orphans = hasSamples ? "WHERE NOT EXISTS (SELECT 1 FROM samples AS s WHERE s._id = o._id)" : ""
        let ids = try Int64.fetchCursor(db, sql: "SELECT o._id FROM \(OutputTable.quotedName(of: output)) AS o \(orphans) ORDER BY o._id")
        while let id = try ids.next() {
            problem(.corruptData, "_id \(id) is not a sample's _id", location: "\(table) _id \(id)", field: "_id")
        }
    }

    /// Each committed batch of each job of `output`: inside the plan, as many rows as
    /// recorded, and a row for every sample the plan puts in it.
    private mutating func checkJobs(of output: String) throws {
        let table = OutputTable.name(of: output)
        let lookup = try db.makeStatement(sql: "SELECT 1 FROM \(OutputTable.quotedName(of: output)) WHERE _id = ?")
        for stored in try StoredJob.fetchAll(db, output: output) {
            let plan: DatasetPlan
            do {
                plan = try Dataset.plan(db, try stored.parameters(source: path), version: stored.datasetVersion, path: path)
            } catch let error as MBDataError {
                problem(.invalidDataset, "inference job \(stored.id) of output \(output): its plan cannot be made: \(error.message)")
                continue
            }
            guard plan.fingerprint == stored.fingerprint else {
                problem(.invalidDataset, "inference job \(stored.id) of output \(output): the samples at version \(stored.datasetVersion) are not those it was planned over")
                continue
            }
            let batches = try Row.fetchAll(db, sql: "SELECT batch, rows FROM mbdata_output_batches WHERE job = ? ORDER BY batch", arguments: [stored.id])
            for record in batches {
                let (batch, rows): (Int, Int) = (record[0], record[1])
                let location = "inference job \(stored.id) batch \(batch)"
                guard (0..<plan.plan.batchesPerEpoch).contains(batch) else {
                    problem(.invalidDataset, "the batch is outside the job's plan of \(plan.plan.batchesPerEpoch) batches", location: location)
                    continue
                }
                let ids = plan.sampleIDs(epoch: 0, batch: batch).compactMap { $0 }
                if ids.count != rows {
                    problem(.invalidDataset, "recorded \(rows) rows, the plan puts \(ids.count) samples in the batch", location: location)
                }
                for id in ids {
                    if try Bool.fetchOne(lookup, arguments: [id]) == nil {
                        problem(.corruptData, "committed, but sample \(id) has no row in \(table)", location: location, field: "_id")
                    }
                }
            }
        }
    }
}
