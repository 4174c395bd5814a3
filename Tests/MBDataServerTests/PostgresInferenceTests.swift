import Foundation
import Logging
import MBDataTestSupport
import MBDataWire
import Synchronization
import Testing

@testable import MBData
@testable import MBDataServer

/// Inference across daemons (issue 13 §1): with their state in one PostgreSQL, two daemons
/// serve one inference job; its cursor, leases and output rows live in the database, and
/// a batch's rows commit with its ack in one transaction.
@Suite(.enabled(if: PostgresServer.isAvailable, Comment(rawValue: PostgresServer.unavailableReason)))
struct PostgresInferenceTests {
    /// Leases of the consumers that finish their batches: long enough never to expire here.
    static let query = "mode=infer&output=preds&batch_size=16&split=val&lease_seconds=30"
    /// The lease of the consumer that dies: it expires on the database's clock while the others work.
    static let shortQuery = "mode=infer&output=preds&batch_size=16&split=val&lease_seconds=1"
    static let parameters = PlanParameters(seed: 0, batchSize: 16, tail: .pad, split: "val", shuffle: false)

    /// A submission that was answered 200, and the daemon that answered it.
    struct Committed: Sendable {
        var lease: Daemon.Lease
        var daemon: Int
    }

    /// Four consumers on two daemons, plus one that leases a batch on daemon 0 and dies
    /// holding it: its lease expires, another consumer commits its batch, and its late
    /// submission is refused and writes nothing. Every sample of the plan ends with exactly
    /// one row in PostgreSQL, and the exports from PostgreSQL are byte for byte those of
    /// the same outputs committed to the dataset file.
    @Test func twoDaemonsServeOneJobAndEverySampleGetsOneRowInPostgreSQL() async throws {
        let directory = try TemporaryDirectory()
        let (path, validation) = try await InferenceServeTests.dataset(directory)
        try await PostgresServer.with { server in
            let database = try await server.createDatabase()
            let url = server.url(database: database)
            let configuration = ServeConfiguration(datasets: [("digits", path)], state: url)
            let committed = try await Self.withDaemons(configuration, count: 2) { daemons in
                let dead = try await Daemon.retryingUnavailable { try await daemons[0].leasedBatch(Self.shortQuery) }
                let committed = try await withThrowingTaskGroup(of: [Committed].self) { consumers in
                    for consumer in 0..<4 {
                        consumers.addTask { try await Self.consume(daemons[consumer % 2], index: consumer % 2) }
                    }
                    return try await consumers.reduce(into: []) { $0 += $1 }
                }
                #expect(committed.contains { $0.lease.batch == dead.batch }, "the dead consumer's batch was never committed")
                #expect(Set(committed.map(\.daemon)) == [0, 1], "a daemon committed nothing")
                let rows = try await Self.rowCount(server, database)
                let late = try await Self.submit(daemons[0], dead, body: Outputs.body(for: dead)).answer
                #expect(late.status == 409 && ["already_done", "lease_expired"].contains(late.code ?? ""), "\(late)")
                let lateElsewhere = try await Self.submit(daemons[1], dead, body: Outputs.body(for: dead)).answer
                #expect(lateElsewhere.status == 409, "\(lateElsewhere)")
                #expect(try await Self.rowCount(server, database) == rows)
                // Both daemons see the job done, from the database.
                for daemon in daemons {
                    let state = try await Daemon.retryingUnavailable { try await daemon.state(dead.cursor) }
                    #expect(state.progress(epoch: 0).lowWatermark == state.batchesPerEpoch && state.mode == .infer)
                    #expect(try await Daemon.retryingUnavailable { try await daemon.lease(Self.query) } == .complete)
                }
                return committed
            }
            let batches = committed.map(\.lease.batch)
            #expect(batches.count == Set(batches).count, "a batch committed twice: \(batches.sorted())")
            let plan = try await Dataset(path: path).plan(Self.parameters)
            #expect(Set(batches) == Set(0..<plan.plan.batchesPerEpoch))
            let planIDs = (0..<plan.plan.batchesPerEpoch).flatMap { plan.sampleIDs(epoch: 0, batch: $0).compactMap { $0 } }.sorted()
            #expect(planIDs.count == validation)
            let stored = try await server.psql("SELECT string_agg(_id::text, ',' ORDER BY _id) FROM mbdata.outputs_digits_preds", database: database)
            #expect(stored.trimmingCharacters(in: .whitespacesAndNewlines) == planIDs.map(String.init).joined(separator: ","))
            let matching = try await server.psql("SELECT count(*) FROM mbdata.outputs_digits_preds WHERE pred >= 0 AND pred < 10", database: database)
            #expect(Int(matching.trimmingCharacters(in: .whitespacesAndNewlines)) == validation)

            try await Self.checkExports(committed.map(\.lease), url: url, path: path, directory: directory)
            try await Self.checkSummary(url: url, validation: validation, batches: plan.plan.batchesPerEpoch)
        }
    }

    /// Malformed submissions to a daemon with PostgreSQL state: 400 naming the field, and
    /// nothing written; a submission under another lease is 409; the corrected one commits.
    @Test func aMalformedSubmissionIsRefusedAndWritesNothingInPostgreSQL() async throws {
        let directory = try TemporaryDirectory()
        let (path, _) = try await InferenceServeTests.dataset(directory)
        try await PostgresServer.with { server in
            let database = try await server.createDatabase()
            let configuration = ServeConfiguration(datasets: [("digits", path)], state: server.url(database: database))
            try await Self.withDaemons(configuration, count: 1) { daemons in
                let daemon = daemons[0]
                let leased = try await Daemon.retryingUnavailable { try await daemon.leasedBatch(Self.query) }
                let rows = leased.ids.count
                var wrongShape = Outputs.fields(leased)
                wrongShape["prob"] = ("F32", [rows, 9], [UInt8](repeating: 0, count: rows * 36))
                let refused = try await Self.submit(daemon, leased, body: Outputs.encode(wrongShape)).answer
                #expect(refused.status == 400 && refused.code == "invalid_outputs" && refused.field == "prob", "\(refused)")
                var wrongIDs = Outputs.fields(leased)
                wrongIDs["_id"] = ("I64", [rows], Outputs.bytes(leased.ids.map { $0 + 1 }))
                let misplaced = try await Self.submit(daemon, leased, body: Outputs.encode(wrongIDs)).answer
                #expect(misplaced.status == 400 && misplaced.field == "_id", "\(misplaced)")
                let unknown = try await Self.submit(daemon, leased, body: Outputs.body(for: leased), lease: String(leased.lease + 1000)).answer
                #expect(unknown.status == 409 && unknown.code == "lease_expired", "\(unknown)")
                #expect(try await Self.rowCount(server, database) == 0)
                #expect(try await Daemon.retryingUnavailable { try await daemon.state(leased.cursor) }.progress(epoch: 0).finishedCount == 0)
                // The lease was kept through the refusals.
                let written = leased.ids.filter { $0 >= 0 }.count
                let submitted = try await Self.submit(daemon, leased, body: Outputs.body(for: leased))
                #expect(submitted.committed, "\(submitted.answer)")
                if submitted.answer.status == 200 {
                    let receipt = try WireJSON.decode(OutputReceipt.self, from: Data(submitted.answer.body))
                    #expect(receipt.rows == written && receipt.finished == 1)
                }
                #expect(try await Self.rowCount(server, database) == written)
                let again = try await Self.submit(daemon, leased, body: Outputs.body(for: leased)).answer
                #expect(again.status == 409 && again.code == "already_done", "\(again)")
                #expect(try await Self.rowCount(server, database) == written)
            }
        }
    }

    // MARK: - Helpers

    /// A submission's answer, and whether it is the answer to a resend.
    struct Submitted {
        var answer: Daemon.Answer
        var resent: Bool

        /// Answered 200, or `409 already_done` to a resend: an attempt answered `503` had committed
        /// (schemas/serve-protocol.md §8, retry rules).
        var committed: Bool { answer.status == 200 || (resent && answer.code == "already_done") }
    }

    /// A submission, sent again with the same lease, for two minutes at most, while it is
    /// answered `503 state_unavailable`.
    static func submit(_ daemon: Daemon, _ leased: Daemon.Lease, body: [UInt8], lease: String? = nil) async throws -> Submitted {
        let started = ContinuousClock.now
        var resent = false
        while true {
            let answer = try await daemon.submit(leased, body: body, lease: lease)
            guard answer.status == 503, answer.code == "state_unavailable", started.duration(to: .now) < .seconds(120) else {
                return Submitted(answer: answer, resent: resent)
            }
            resent = true
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Runs `count` daemons of `configuration` while `body` runs.
    static func withDaemons<T: Sendable>(
        _ configuration: ServeConfiguration, count: Int, _ body: @escaping @Sendable ([Daemon]) async throws -> T
    ) async throws -> T {
        @Sendable func nest(_ urls: [String]) async throws -> T {
            guard urls.count < count else { return try await body(urls.map(Daemon.init(url:))) }
            return try await withServer(configuration) { url in try await nest(urls + [url]) }
        }
        return try await nest([])
    }

    /// A consumer: leases from `daemon` until the job is complete, submitting each batch;
    /// returns what was answered 200.
    static func consume(_ daemon: Daemon, index: Int) async throws -> [Committed] {
        var committed: [Committed] = []
        while true {
            switch try await Daemon.retryingUnavailable({ try await daemon.lease(query) }) {
            case .complete:
                return committed
            case .wait:
                // The dead consumer's batch: leased until its lease ends on the database's clock.
                try await Task.sleep(for: .milliseconds(100))
            case .batch(let leased):
                let submitted = try await submit(daemon, leased, body: Outputs.body(for: leased))
                guard submitted.committed else { throw Failure("batch \(leased.batch): \(submitted.answer)") }
                committed.append(Committed(lease: leased, daemon: index))
            }
        }
    }

    static func rowCount(_ server: PostgresServer, _ database: String) async throws -> Int {
        let text = try await server.psql("SELECT count(*) FROM mbdata.outputs_digits_preds", database: database)
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Exports the output from PostgreSQL in every format, commits the same batches to the
    /// dataset file, exports them from there, and compares the files byte for byte.
    static func checkExports(_ committed: [Daemon.Lease], url: String, path: String, directory: TemporaryDirectory) async throws {
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        for format in OutputExportFormat.allCases {
            let exported = try await PostgresStateStore.withStore(url: url, logger: logger) { store in
                try await store.exportOutput(dataset: "digits", output: "preds", format: format, to: directory.path("pg-\(format.rawValue)"))
            }
            #expect(exported == committed.reduce(0) { total, leased in total + leased.ids.filter { id in id >= 0 }.count })
        }
        let dataset = try Dataset(path: path)
        let job = try await dataset.inferenceJob(output: "preds", parameters: parameters)
        for leased in committed { _ = try await dataset.commitOutputs(try Outputs.tensors(for: leased), batch: leased.batch, of: job) }
        for format in OutputExportFormat.allCases {
            _ = try await dataset.exportOutput("preds", format: format, to: directory.path("file-\(format.rawValue)"))
            let files = format == .npy ? ["/_id.npy", "/pred.npy", "/prob.npy"] : [""]
            for file in files {
                let fromPostgres = try Data(contentsOf: URL(fileURLWithPath: directory.path("pg-\(format.rawValue)") + file))
                let fromFile = try Data(contentsOf: URL(fileURLWithPath: directory.path("file-\(format.rawValue)") + file))
                #expect(fromPostgres == fromFile, "\(format.rawValue) \(file) differs")
                #expect(!fromPostgres.isEmpty)
            }
        }
    }

    /// What `outputs list --state` shows: the table, its rows, the job's coverage.
    static func checkSummary(url: String, validation: Int, batches: Int) async throws {
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let summaries = try await PostgresStateStore.withStore(url: url, logger: logger) { try await $0.outputSummaries(dataset: "digits") }
        #expect(summaries.map(\.table) == ["outputs_digits_preds"])
        #expect(summaries.first?.rows == validation && summaries.first?.fields.map(\.name) == ["pred", "prob"])
        let job = summaries.first?.jobs.first
        #expect(summaries.first?.jobs.count == 1)
        #expect(job?.rowsWritten == validation && job?.rowsExpected == validation)
        #expect(job?.finishedBatches == batches && job?.batches == batches)
    }
}
