import AsyncHTTPClient
import Foundation
import GRDB
import MBDataClient
import MBDataTestSupport
import MBDataWire
import NIOCore
import NIOHTTP1
import Testing

@testable import MBData
@testable import MBDataServer

/// Inference through `mbdata serve` (schemas/serve-protocol.md §8) against a real daemon on
/// a loopback port: leases of an inference job, submissions of outputs, their refusals, a
/// restart mid-job, and what ends up in the dataset file.
@Suite struct InferenceServeTests {
    static let query = "mode=infer&output=preds&batch_size=64&split=val"

    /// The digits dataset with an output `preds`: `pred` int64, `prob` float32[10].
    static func dataset(_ directory: TemporaryDirectory) async throws -> (path: String, validation: Int) {
        let path = try await digitsDataset(directory)
        let dataset = try Dataset(path: path)
        try await dataset.createOutput(
            "preds", schema: Schema(name: "preds", fields: [Field(name: "pred", dtype: .int64), Field(name: "prob", dtype: .float32, shape: [10])]))
        return (path, try await dataset.info().splits["val"] ?? 0)
    }

    static func configuration(_ directory: TemporaryDirectory, _ path: String) -> ServeConfiguration {
        ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))
    }

    /// Runs `body` against a daemon serving a new digits dataset with the output `preds`.
    static func withDaemon(
        clock: ServeClock = .continuous, maxOutputBytes: Int? = nil,
        _ body: @escaping @Sendable (_ daemon: Daemon, _ path: String, _ validation: Int) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        let (path, validation) = try await dataset(directory)
        var configuration = configuration(directory, path)
        if let maxOutputBytes { configuration.maxOutputBytes = maxOutputBytes }
        try await withServer(configuration, clock: clock) { url in try await body(Daemon(url: url), path, validation) }
    }

    // MARK: - The happy path

    @Test func leasedBatchesSubmittedLandInTheOutputTableOnceEachUntilComplete() async throws {
        try await Self.withDaemon { daemon, path, validation in
            let first = try await daemon.leasedBatch()
            #expect(first.cursor.hasPrefix("o-"))
            let receipt = try await daemon.submitted(first, body: Outputs.body(for: first))
            #expect(receipt.cursor == first.cursor && receipt.batch == first.batch && receipt.finished == 1)
            #expect(receipt.rows == first.ids.filter { $0 >= 0 }.count)
            #expect(try Rows.count(path) == receipt.rows)

            // The rest, every other one sent as an LZ4 frame.
            var leased = [first.batch]
            while case .batch(let next) = try await daemon.lease() {
                leased.append(next.batch)
                let body = Outputs.body(for: next)
                _ = try await daemon.submitted(next, body: leased.count % 2 == 0 ? LZ4Frame.compress(body) : body, lz4: leased.count % 2 == 0)
            }
            #expect(try await daemon.lease() == .complete)
            #expect(leased == Array(0..<receipt.batches))
            let state = try await daemon.state(first.cursor)
            #expect(state.mode == .infer && state.output == "preds" && state.plan.tail == .pad && !state.plan.shuffle)
            #expect(state.epochs == [.init(epoch: 0, lowWatermark: receipt.batches)])
            #expect(try Rows.summary(path) == .everyValidationSampleOnce(validation))
        }
    }

    // MARK: - Exactly once

    @Test func aSecondSubmissionIsAlreadyDoneAndWritesNothing() async throws {
        try await Self.withDaemon { daemon, path, _ in
            let leased = try await daemon.leasedBatch()
            let body = Outputs.body(for: leased)
            let rows = try await daemon.submitted(leased, body: body).rows
            // A retry of a submission that committed: the client counts it as done.
            #expect(try await daemon.submit(leased, body: body).code == "already_done")
            #expect(try Rows.count(path) == rows)

            // Another process committed the next batch while its lease was held here.
            let other = try await daemon.leasedBatch()
            let dataset = try Dataset(path: path)
            let job = try await dataset.inferenceJob(output: "preds", parameters: PlanParameters(seed: 0, batchSize: 64, tail: .pad, split: "val", shuffle: false))
            _ = try await dataset.commitOutputs(try Outputs.tensors(for: other), batch: other.batch, of: job)
            let written = try Rows.count(path)
            let refused = try await daemon.submit(other, body: Outputs.body(for: other))
            #expect(refused.status == 409 && refused.code == "already_done")
            #expect(try Rows.count(path) == written)
            #expect(try await daemon.state(other.cursor).epochs == [.init(epoch: 0, lowWatermark: 2)])
        }
    }

    @Test func anExpiredLeaseIsRefusedAndItsBatchIsLeasedAgainAndCommittedOnce() async throws {
        let clock = ManualClock()
        try await Self.withDaemon(clock: clock.serveClock) { daemon, path, _ in
            let late = try await daemon.leasedBatch(Self.query + "&lease_seconds=5")
            clock.advance(by: .seconds(6))
            let refused = try await daemon.submit(late, body: Outputs.body(for: late))
            #expect(refused.status == 409 && refused.code == "lease_expired")
            #expect(try Rows.count(path) == 0)
            let again = try await daemon.leasedBatch()
            #expect(again.batch == late.batch && again.lease != late.lease)
            let rows = try await daemon.submitted(again, body: Outputs.body(for: again)).rows
            // Late again, now that another consumer committed its batch: already done.
            #expect(try await daemon.submit(late, body: Outputs.body(for: late)).code == "already_done")
            #expect(try Rows.count(path) == rows)
        }
    }

    /// Four consumers at once, each of which now and then dies holding a lease (never
    /// submits it) or runs late (the clock passes its lease's end before it submits): every
    /// batch is committed by exactly one 200, and every sample has one row.
    @Test func concurrentConsumersThatDieOrRunLateStillWriteEverySampleOnce() async throws {
        let clock = ManualClock()
        try await Self.withDaemon(clock: clock.serveClock) { daemon, path, validation in
            let query = "mode=infer&output=preds&batch_size=8&split=val&lease_seconds=5"
            let committed = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var committed: [Int] = []
                        while true {
                            switch try await daemon.lease(query) {
                            case .complete: return committed
                            case .wait: clock.advance(by: .seconds(6))
                            case .batch(let leased):
                                let fate = Int.random(in: 0..<8)
                                if fate == 0 { continue }
                                if fate == 1 { clock.advance(by: .seconds(6)) }
                                let answer = try await daemon.submit(leased, body: Outputs.body(for: leased))
                                if answer.status == 200 {
                                    committed.append(leased.batch)
                                } else if answer.status != 409 || !["lease_expired", "already_done"].contains(answer.code) {
                                    throw Failure("batch \(leased.batch): \(answer)")
                                }
                            }
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(committed.sorted() == Array(0..<((validation + 7) / 8)))
            #expect(try Rows.summary(path) == .everyValidationSampleOnce(validation))
        }
    }

    // MARK: - Refusals

    @Test func malformedSubmissionsAreRefusedNamingTheFieldAndWriteNothing() async throws {
        try await Self.withDaemon(maxOutputBytes: 64 << 10) { daemon, path, _ in
            let leased = try await daemon.leasedBatch()
            let rows = leased.ids.count
            let good = Outputs.fields(leased)
            func body(_ change: (inout [String: (dtype: String, shape: [Int], bytes: [UInt8])]) -> Void) -> [UInt8] {
                var tensors = good
                change(&tensors)
                return Outputs.encode(tensors)
            }
            let cases: [(what: String, body: [UInt8], field: String)] = [
                ("missing field", body { $0["prob"] = nil }, "prob"),
                ("extra tensor", body { $0["logits"] = ("F32", [rows, 10], [UInt8](repeating: 0, count: rows * 40)) }, "logits"),
                ("wrong dtype", body { $0["prob"] = ("F64", [rows, 10], [UInt8](repeating: 0, count: rows * 80)) }, "prob"),
                ("wrong shape", body { $0["prob"] = ("F32", [rows, 9], [UInt8](repeating: 0, count: rows * 36)) }, "prob"),
                ("wrong row count", body { $0["pred"] = ("I64", [rows - 1], [UInt8](repeating: 0, count: (rows - 1) * 8)) }, "pred"),
                ("wrong _id", body { $0["_id"] = ("I64", [rows], Outputs.bytes(leased.ids.map { $0 + 1 })) }, "_id"),
                ("unused dtype", body { $0["pred"] = ("U16", [rows], [UInt8](repeating: 0, count: rows * 2)) }, "pred"),
            ]
            for (what, bytes, field) in cases {
                let refused = try await daemon.submit(leased, body: bytes)
                #expect(refused.status == 400 && refused.code == "invalid_outputs" && refused.field == field, "\(what): \(refused)")
            }
            let valid = Outputs.encode(good)
            let bodies: [(what: String, status: Int, code: String, send: () async throws -> Daemon.Answer)] = [
                ("not safetensors", 400, "invalid_body", { try await daemon.submit(leased, body: Array("{\"pred\": 1}".utf8)) }),
                ("bad LZ4 frame", 400, "invalid_body", { try await daemon.submit(leased, body: Array(LZ4Frame.compress(valid).dropLast(3)), lz4: true) }),
                ("safetensors sent as LZ4", 400, "invalid_body", { try await daemon.submit(leased, body: valid, lz4: true) }),
                ("no lease", 400, "invalid_body", { try await daemon.submit(leased, body: valid, omittingLease: true) }),
                ("a lease not a number", 400, "invalid_body", { try await daemon.submit(leased, body: valid, lease: "seven") }),
                ("another content type", 400, "invalid_body", { try await daemon.submit(leased, body: valid, contentType: "application/octet-stream") }),
                ("over the limit", 413, "body_too_large", { try await daemon.submit(leased, body: valid + [UInt8](repeating: 0, count: 64 << 10)) }),
                (
                    "a frame whose content is over the limit", 413, "body_too_large",
                    { try await daemon.submit(leased, body: LZ4Frame.compress([UInt8](repeating: 0, count: 1 << 20)), lz4: true) }
                ),
                ("another lease", 409, "lease_expired", { try await daemon.submit(leased, body: valid, lease: String(leased.lease + 1000)) }),
            ]
            for (what, status, code, send) in bodies {
                let refused = try await send()
                #expect(refused.status == status && refused.code == code && refused.field == nil, "\(what): \(refused)")
            }
            #expect(try Rows.count(path) == 0)
            // A refused submission keeps its lease: the corrected one is taken.
            #expect(try await daemon.submitted(leased, body: valid).batch == leased.batch)
        }
    }

    /// A write of the dataset file that fails (here a trigger refusing it) is `503
    /// state_unavailable`: nothing written, the lease kept, and the retry commits.
    @Test func aFailedWriteIsStateUnavailableAndTheRetryWithTheSameLeaseCommits() async throws {
        try await Self.withDaemon { daemon, path, _ in
            let leased = try await daemon.leasedBatch()
            let file = try DatabaseQueue(path: path)
            try await file.write { db in
                try db.execute(
                    sql: "CREATE TRIGGER refuse_outputs BEFORE INSERT ON mbdata_output_batches BEGIN SELECT RAISE(FAIL, 'injected fault'); END")
            }
            let refused = try await daemon.submit(leased, body: Outputs.body(for: leased))
            #expect(refused.status == 503 && refused.code == "state_unavailable" && refused.headers.first(name: "Retry-After") == "1")
            #expect(try Rows.count(path) == 0)
            try await file.write { db in try db.execute(sql: "DROP TRIGGER refuse_outputs") }
            #expect(try await daemon.submitted(leased, body: Outputs.body(for: leased)).batch == leased.batch)
        }
    }

    @Test func inferLeasesTakeOnlyTheirParametersAndInferenceCursorsOnlyOutputs() async throws {
        try await Self.withDaemon { daemon, path, _ in
            for (extra, parameter) in [
                ("&world=2", "world"), ("&rank=1", "rank"), ("&epoch=1", "epoch"), ("&group=other", "group"), ("&replica=1", "replica"),
                ("&start=2", "start"), ("&tail=sideways", "tail"),
            ] {
                let answer = try await daemon.send(.POST, "/v1/datasets/digits/lease?" + Self.query + extra)
                #expect(answer.status == 400 && answer.code == "invalid_parameter" && answer.message.contains(parameter), "\(extra): \(answer)")
            }
            // Their defaults, spelled out, are fine.
            let leased = try await daemon.leasedBatch(Self.query + "&world=1&rank=0&epoch=0&group=default&start=0")
            let missing = try await daemon.send(.POST, "/v1/datasets/digits/lease?mode=infer&batch_size=64")
            #expect(missing.status == 400 && missing.code == "invalid_parameter" && missing.message.contains("output"))
            let unknown = try await daemon.send(.POST, "/v1/datasets/digits/lease?mode=infer&output=embeddings&batch_size=64")
            #expect(unknown.status == 404 && unknown.code == "unknown_output")

            // The cursor route names the same job.
            let resolved = try await daemon.send(.GET, "/v1/datasets/digits/cursor?" + Self.query)
            #expect(try WireJSON.decode(CursorState.self, from: Data(resolved.body)).cursor == leased.cursor)

            let cursor = "/v1/cursors/\(leased.cursor)"
            let refusedRoutes: [(HTTPMethod, String, String)] = [
                (.POST, cursor + "/acks", #"{"leases": [\#(leased.lease)]}"#), (.PUT, cursor, "{}"), (.DELETE, cursor, ""),
            ]
            for (method, target, body) in refusedRoutes {
                let answer = try await daemon.send(method, target, body: Array(body.utf8))
                #expect(answer.status == 400 && answer.code == "invalid_body" && answer.message.contains("submitting outputs"), "\(method) \(target)")
            }
            let shareCursor = try WireJSON.decode(
                CursorState.self, from: Data(try await daemon.send(.GET, "/v1/datasets/digits/cursor?batch_size=64&mode=share").body)
            ).cursor
            let toShare = try await daemon.submit(leased, body: Outputs.body(for: leased), cursor: shareCursor)
            #expect(toShare.status == 400 && toShare.code == "invalid_body")
            let nowhere = try await daemon.submit(leased, body: Outputs.body(for: leased), cursor: "o-0000000000000000")
            #expect(nowhere.status == 404 && nowhere.code == "unknown_cursor")
            #expect(try Rows.count(path) == 0)
        }
    }

    // MARK: - Restart

    @Test func aRestartedDaemonRefusesOldLeasesAndOffersOnlyTheRemainingBatches() async throws {
        let directory = try TemporaryDirectory()
        let (path, validation) = try await Self.dataset(directory)
        let configuration = Self.configuration(directory, path)
        let (held, committed) = try await withServer(configuration) { url in
            let daemon = Daemon(url: url)
            var leases: [Daemon.Lease] = []
            for _ in 0..<3 { leases.append(try await daemon.leasedBatch()) }
            // Batches 0 and 2 committed; 1 leased when the daemon goes away.
            for leased in [leases[0], leases[2]] { _ = try await daemon.submitted(leased, body: Outputs.body(for: leased)) }
            return (leases[1], [leases[0].batch, leases[2].batch])
        }
        try await withServer(configuration) { url in
            let daemon = Daemon(url: url)
            let refused = try await daemon.submit(held, body: Outputs.body(for: held))
            #expect(refused.status == 409 && refused.code == "lease_expired")
            let state = try await daemon.state(held.cursor)
            #expect(state.epochs == [.init(epoch: 0, lowWatermark: 1, finishedAbove: [2])])
            var leased: [Int] = []
            while case .batch(let next) = try await daemon.lease() {
                leased.append(next.batch)
                _ = try await daemon.submitted(next, body: Outputs.body(for: next))
            }
            #expect(try await daemon.lease() == .complete)
            #expect(Set(leased).isDisjoint(with: committed) && leased.first == held.batch)
            #expect(leased.count + committed.count == state.batchesPerEpoch)
            #expect(try Rows.summary(path) == .everyValidationSampleOnce(validation))
        }
    }

    // MARK: - Metrics

    @Test func metricsCountOutputsWrittenAndRefused() async throws {
        try await Self.withDaemon { daemon, _, _ in
            let leased = try await daemon.leasedBatch()
            let body = Outputs.body(for: leased)
            _ = try await daemon.submit(leased, body: Array(body.dropLast(8)))
            let rows = try await daemon.submitted(leased, body: body).rows
            _ = try await daemon.submit(leased, body: body)
            let metrics = String(decoding: try await daemon.send(.GET, "/metrics").body, as: UTF8.self)
            func value(_ prefix: String) -> Double? {
                metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            }
            let labels = #"{dataset="digits",output="preds"}"#
            #expect(value("mbdata_outputs_rows_total" + labels) == Double(rows))
            #expect(value("mbdata_outputs_batches_total" + labels) == 1)
            #expect(value("mbdata_outputs_bytes_total" + labels) == Double(body.count))
            #expect(value(#"mbdata_outputs_refused_total{dataset="digits",output="preds",reason="invalid_body"}"#) == 1)
            #expect(value(#"mbdata_outputs_refused_total{dataset="digits",output="preds",reason="already_done"}"#) == 1)
            #expect(value("mbdata_outputs_rows_per_second" + labels) == Double(rows) / 10)
            #expect(value(#"mbdata_batches_served_total{dataset="digits",mode="infer"}"#) == 1)
        }
    }
}

/// A test's failure to reach the state it checks.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// HTTP to a test daemon through one AsyncHTTPClient shared by the tests.
struct Daemon: Sendable {
    let url: String

    /// A refused connection fails its request at once, as the reference clients' does
    /// (schemas/serve-protocol.md §6): `HTTPClient.shared` retries it until the request's
    /// deadline, so a request to a stopped daemon took 30 s before its consumer moved on.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    struct Answer: Sendable, CustomStringConvertible {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var error: ErrorEnvelope.Detail? { try? WireJSON.decode(ErrorEnvelope.self, from: Data(body)).error }
        var code: String? { error?.code }
        var field: String? { error?.field }
        var message: String { error?.message ?? "" }
        var description: String { "\(status) \(String(decoding: body.prefix(300), as: UTF8.self))" }
    }

    struct Lease: Sendable, Equatable {
        var cursor: String
        var batch: Int
        var lease: UInt64
        var ids: [Int64]
        var labels: [Int64]
    }

    enum Leased: Equatable {
        case batch(Lease)
        case complete
        case wait
    }

    func send(_ method: HTTPMethod, _ target: String, body: [UInt8]? = nil, headers: [(String, String)] = []) async throws -> Answer {
        var request = HTTPClientRequest(url: url + target)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await Self.client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    /// A `503 state_unavailable` (the daemon could not reach its state store) or `503 draining`
    /// (it is shutting down) answer: nothing changed; a failing-over client tries the next daemon.
    struct Unavailable: Error, CustomStringConvertible {
        var answer: Answer
        var description: String { "\(answer)" }
    }

    /// `call`, tried again while the daemon answers `503 state_unavailable` — nothing changed,
    /// retry later (schemas/serve-protocol.md §6) — for two minutes at most. On a loaded machine
    /// a PostgreSQL call can outlast the daemon's deadline for it; a client waits and retries.
    static func retryingUnavailable<T: Sendable>(_ call: @Sendable () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        while true {
            do {
                return try await call()
            } catch where isStateUnavailable(error) && started.duration(to: .now) < .seconds(120) {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    static func isStateUnavailable(_ error: any Error) -> Bool {
        switch error {
        case let unavailable as Unavailable: unavailable.answer.code == "state_unavailable"
        case let failure as Failure: failure.description.contains("state_unavailable")
        default: false
        }
    }

    func lease(_ query: String = InferenceServeTests.query) async throws -> Leased {
        let answer = try await send(.POST, "/v1/datasets/digits/lease?" + query)
        if answer.status == 204 { return .wait }
        if answer.status == 503 && (answer.code == "state_unavailable" || answer.code == "draining") { throw Unavailable(answer: answer) }
        guard answer.status == 200, let cursor = answer.headers.first(name: "MBData-Cursor") else { throw Failure("lease: \(answer)") }
        switch try WireDecoder.messages(answer.body).first {
        case .batch(let ready, let lease)?:
            let batch = try Batch(epoch: ready.epoch, index: ready.batch, rank: ready.rank, safetensors: LZ4Frame.decompress(ready.frame))
            return .batch(Lease(cursor: cursor, batch: ready.batch, lease: lease, ids: batch.ids, labels: batch["label"]?.int64s() ?? []))
        case .end(reason: .complete)?: return .complete
        default: throw Failure("lease: neither a batch nor the end: \(answer)")
        }
    }

    /// A lease that must get a batch.
    func leasedBatch(_ query: String = InferenceServeTests.query) async throws -> Lease {
        guard case .batch(let leased) = try await lease(query) else { throw Failure("a lease (\(query)) got no batch") }
        return leased
    }

    func submit(
        _ leased: Lease, body: [UInt8], lz4: Bool = false, lease: String? = nil, omittingLease: Bool = false, contentType: String? = nil,
        cursor: String? = nil
    ) async throws -> Answer {
        var headers = [("Content-Type", contentType ?? (lz4 ? "application/vnd.mbdata.safetensors+lz4" : "application/vnd.mbdata.safetensors"))]
        if !omittingLease { headers.append(("MBData-Lease", lease ?? String(leased.lease))) }
        return try await send(.POST, "/v1/cursors/\(cursor ?? leased.cursor)/outputs", body: body, headers: headers)
    }

    /// A submission that must succeed.
    func submitted(_ leased: Lease, body: [UInt8], lz4: Bool = false) async throws -> OutputReceipt {
        let answer = try await submit(leased, body: body, lz4: lz4)
        guard answer.status == 200 else { throw Failure("submission of batch \(leased.batch): \(answer)") }
        return try WireJSON.decode(OutputReceipt.self, from: Data(answer.body))
    }

    func state(_ cursor: String) async throws -> CursorState {
        let answer = try await send(.GET, "/v1/cursors/\(cursor)")
        guard answer.status == 200 else { throw Failure("state: \(answer)") }
        return try WireJSON.decode(CursorState.self, from: Data(answer.body))
    }
}

/// The outputs a perfect model gives: `pred` the label, `prob` its one-hot row.
enum Outputs {
    static func fields(_ leased: Daemon.Lease) -> [String: (dtype: String, shape: [Int], bytes: [UInt8])] {
        let rows = leased.ids.count
        var probabilities = [Float](repeating: 0, count: rows * 10)
        for (row, label) in leased.labels.enumerated() where (0..<10).contains(label) { probabilities[row * 10 + Int(label)] = 1 }
        return ["pred": ("I64", [rows], bytes(leased.labels)), "prob": ("F32", [rows, 10], bytes(probabilities)), "_id": ("I64", [rows], bytes(leased.ids))]
    }

    static func tensors(for leased: Daemon.Lease) throws -> [String: Tensor] {
        let buffer = body(for: leased)
        return try Batch(epoch: 0, index: leased.batch, rank: 0, safetensors: buffer).tensors
    }

    static func body(for leased: Daemon.Lease) -> [UInt8] { encode(fields(leased)) }

    static func encode(_ tensors: [String: (dtype: String, shape: [Int], bytes: [UInt8])]) -> [UInt8] {
        var writer = SafetensorsWriter()
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) { writer.add(name, dtype: tensor.dtype, shape: tensor.shape, bytes: tensor.bytes) }
        return writer.encoded()
    }

    static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
}

/// What the dataset file holds of the output `preds`.
enum Rows {
    struct Summary: Equatable {
        var rows: Int
        var distinct: Int
        var inValidation: Int
        var predictedRight: Int

        /// One row for each of the `count` validation samples, each the right label.
        static func everyValidationSampleOnce(_ count: Int) -> Summary {
            Summary(rows: count, distinct: count, inValidation: count, predictedRight: count)
        }
    }

    static func count(_ path: String) throws -> Int {
        try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outputs_preds") ?? -1 }
    }

    static func summary(_ path: String) throws -> Summary {
        try DatabaseQueue(path: path).read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT count(*), count(DISTINCT o._id), coalesce(sum(s._split = 'val'), 0), coalesce(sum(s.label = o.pred), 0)
                    FROM outputs_preds o LEFT JOIN samples s USING (_id)
                    """)
            guard let row else { return Summary(rows: -1, distinct: -1, inValidation: -1, predictedRight: -1) }
            return Summary(rows: row[0], distinct: row[1], inValidation: row[2], predictedRight: row[3])
        }
    }
}
