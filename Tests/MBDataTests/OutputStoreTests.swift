import Foundation
import GRDB
import Testing

@testable import MBData

/// Output tables: create, list, drop, the schema rules, the v2 migration, coverage and verify.
@Suite struct OutputStoreTests {
    @Test func createListAndDrop() async throws {
        let f = try await OutputFixture(output: nil)
        #expect(try await f.dataset.outputs() == [])
        let outputSchema = try schema(OutputFixture.outputSchema)
        try await f.dataset.createOutput("preds", schema: outputSchema)
        let listed = try await f.dataset.outputs()
        #expect(listed.map(\.name) == ["preds"])
        let info = try await f.dataset.output("preds")
        #expect(info.schema == outputSchema && info.rows == 0 && !info.createdAt.isEmpty)
        #expect(try await f.count("SELECT count(*) FROM sqlite_master WHERE name = 'outputs_preds'") == 1)

        for name in ["preds", "PREDS"] {
            let error = await #expect(throws: MBDataError.self) { try await f.dataset.createOutput(name, schema: outputSchema) }
            #expect(error?.code == .invalidArgument && error?.parameter == "name" && error?.message.contains("exists") == true)
        }

        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters())
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 0)), batch: 0, of: job)
        try await f.dataset.dropOutput("preds")
        #expect(try await f.dataset.outputs() == [])
        #expect(try await f.count("SELECT count(*) FROM sqlite_master WHERE name = 'outputs_preds'") == 0)
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_jobs") == 0)
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_batches") == 0)
        for call in [{ try await f.dataset.dropOutput("preds") }, { _ = try await f.dataset.output("preds") }] {
            let error = await #expect(throws: MBDataError.self) { try await call() }
            #expect(error?.matches(.invalidArgument, "no output named preds") == true)
        }
        let stale = await #expect(throws: MBDataError.self) {
            try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 1)), batch: 1, of: job)
        }
        #expect(stale?.code == .invalidArgument)
        // Created again, the name starts empty; a job opened before the drop stays refused,
        // even where the new job has its id.
        try await f.dataset.createOutput("preds", schema: try schema(#"{"name": "p", "fields": [{"name": "pred", "dtype": "int32"}]}"#))
        #expect(try await f.dataset.output("preds").rows == 0)
        let again = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters())
        #expect(again.id == job.id, "SQLite reuses the id of the deleted row")
        let reused = await #expect(throws: MBDataError.self) {
            try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 1)), batch: 1, of: job)
        }
        #expect(reused?.code == .invalidArgument)
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 0)
    }

    static let refusedSchemas: [(json: String, field: String)] = [
        (#"{"name": "o", "fields": [{"name": "caption", "dtype": "string"}]}"#, "caption"),
        (#"{"name": "o", "fields": [{"name": "a", "dtype": "int64"}, {"name": "blob", "dtype": "bytes"}]}"#, "blob"),
        (#"{"name": "o", "fields": [{"name": "tokens", "dtype": "int32", "shape": [null]}]}"#, "tokens"),
        (#"{"name": "o", "fields": [{"name": "grid", "dtype": "float32", "shape": [4, null]}]}"#, "grid"),
        (#"{"name": "o", "key": "id", "fields": [{"name": "id", "dtype": "int64"}]}"#, "id"),
    ]

    @Test(arguments: refusedSchemas)
    func refusesSchemasThatAreNotFixedNumericTensors(json: String, field: String) async throws {
        let f = try await OutputFixture(output: nil)
        let error = await #expect(throws: MBDataError.self) { try await f.dataset.createOutput("o", schema: try schema(json)) }
        #expect(error?.code == .invalidSchema && error?.field == field)
        #expect(try await f.dataset.outputs() == [])
        #expect(try await f.count("SELECT count(*) FROM sqlite_master WHERE name = 'outputs_o'") == 0)
    }

    @Test(arguments: ["", "1preds", "_preds", "pre-ds", "pre ds", "p\"x", String(repeating: "a", count: 65), "préds"])
    func refusesBadNames(name: String) async throws {
        let f = try await OutputFixture(output: nil)
        let error = await #expect(throws: MBDataError.self) {
            try await f.dataset.createOutput(name, schema: try schema(OutputFixture.outputSchema))
        }
        #expect(error?.code == .invalidArgument && error?.parameter == "name")
        #expect(try await f.dataset.outputs() == [])
    }

    @Test func aTableOfTheSameNameIsNotTakenOver() async throws {
        let f = try await OutputFixture(output: nil)
        try await f.sql("CREATE TABLE outputs_mine (x INTEGER)")
        let error = await #expect(throws: MBDataError.self) {
            try await f.dataset.createOutput("mine", schema: try schema(OutputFixture.outputSchema))
        }
        #expect(error?.code == .invalidArgument)
        #expect(try await f.count("SELECT count(*) FROM mbdata_outputs") == 0)
    }

    /// A file written before outputs existed (format 1: no output tables, one migration
    /// recorded) is upgraded in place when opened, its samples untouched.
    @Test func aVersion1DatasetIsUpgradedInPlace() async throws {
        let f = try await OutputFixture(output: nil)
        try await f.sql(
            """
            DROP TABLE mbdata_outputs; DROP TABLE mbdata_output_jobs; DROP TABLE mbdata_output_batches;
            DELETE FROM grdb_migrations WHERE identifier = 'v2: outputs';
            UPDATE mbdata_meta SET value = '1' WHERE key = 'format_version';
            """)
        let path = f.dataset.path
        #expect(try await f.count("SELECT count(*) FROM sqlite_master WHERE name = 'mbdata_outputs'") == 0)
        let reopened = try Dataset(path: path)
        #expect(try await reopened.info().formatVersion == 2)
        #expect(try await reopened.info().sampleCount == 17)
        try await reopened.createOutput("preds", schema: try schema(OutputFixture.outputSchema))
        #expect(try await reopened.outputs().map(\.name) == ["preds"])
    }

    @Test func aNewerFormatIsStillRefused() async throws {
        let f = try await OutputFixture(output: nil)
        try await f.sql("UPDATE mbdata_meta SET value = '3' WHERE key = 'format_version'")
        let error = #expect(throws: MBDataError.self) { try Dataset(path: f.dataset.path) }
        #expect(error?.matches(.invalidDataset, "dataset format 3 is newer than this mbdata (2)") == true)
    }

    @Test func coverageCountsRowsPerSplitAtTheCurrentVersion() async throws {
        let f = try await OutputFixture(train: 10, val: 7)
        #expect(
            try await f.dataset.outputCoverage("preds") == [
                OutputCoverage(split: "train", written: 0, expected: 10), OutputCoverage(split: "val", written: 0, expected: 7),
            ])
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4, split: "train"))
        for batch in [0, 2] {
            _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch)), batch: batch, of: job)
        }
        let valJob = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 7, split: "val"))
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: valJob.plan.sampleIDs(epoch: 0, batch: 0)), batch: 0, of: valJob)
        try await f.addSamples(keys: 100..<103, split: "val")
        try await f.addSamples(keys: 200..<201, split: "test")
        #expect(
            try await f.dataset.outputCoverage("preds") == [
                OutputCoverage(split: "test", written: 0, expected: 1), OutputCoverage(split: "train", written: 6, expected: 10),
                OutputCoverage(split: "val", written: 7, expected: 10),
            ])
        #expect(try await f.dataset.output("preds").rows == 13)
        let error = await #expect(throws: MBDataError.self) { try await f.dataset.outputCoverage("nope") }
        #expect(error?.code == .invalidArgument)
    }

    @Test func verifyPassesCompleteOutputsAndFindsPlantedDamage() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        for batch in 0..<job.batches {
            _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch)), batch: batch, of: job)
        }
        #expect(try await f.dataset.verifyOutputs().map(\.description) == [])

        try await f.sql("UPDATE outputs_preds SET _id = 999 WHERE _id = 3")
        try await f.sql("UPDATE outputs_preds SET prob = x'0000' WHERE _id = 5")
        try await f.sql("UPDATE outputs_preds SET score = 'high' WHERE _id = 6")
        let problems = try await f.dataset.verifyOutputs()
        #expect(problems.contains { $0.code == .corruptData && $0.field == "_id" && $0.message == "_id 999 is not a sample's _id" })
        #expect(problems.contains { $0.field == "prob" && $0.location == "outputs_preds _id 5" && $0.message.contains("expected 12 bytes") })
        #expect(problems.contains { $0.field == "score" && $0.location == "outputs_preds _id 6" && $0.message.contains("got TEXT") })
        #expect(problems.contains { $0.location == "inference job \(job.id) batch 0" && $0.message.contains("sample 3 has no row") })
        #expect(problems.count == 4, "\(problems)")
    }

    @Test func verifyFindsBrokenBookkeeping() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 1)), batch: 1, of: job)
        try await f.sql("UPDATE mbdata_output_batches SET rows = 3 WHERE batch = 1")
        try await f.sql("INSERT INTO mbdata_output_batches VALUES (\(job.id), 7, 4, 'now'), (42, 0, 4, 'now')")
        try await f.sql("INSERT INTO mbdata_output_jobs(output, plan_key, plan, fingerprint, dataset_version, batches, created_at) VALUES ('gone', 'k', '{}', 'x', 1, 1, 'now')")
        try await f.sql("ALTER TABLE outputs_preds ADD COLUMN extra INTEGER")
        let messages = try await f.dataset.verifyOutputs().map(\.description)
        #expect(messages.contains { $0.contains("belongs to output gone, which does not exist") })
        #expect(messages.contains { $0.contains("1 committed batch records belong to no inference job") })
        #expect(messages.contains { $0.contains("table outputs_preds has columns") })
        try await f.sql("ALTER TABLE outputs_preds DROP COLUMN extra")
        let again = try await f.dataset.verifyOutputs().map(\.description)
        #expect(again.contains { $0.contains("batch 1: recorded 3 rows, the plan puts 4 samples in the batch") })
        #expect(again.contains { $0.contains("batch 7: the batch is outside the job's plan of 3 batches") })
    }
}
