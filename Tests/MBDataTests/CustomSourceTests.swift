import Foundation
import Synchronization
import Testing

@testable import MBData

/// A source format added the way a user adds one: a ``SampleSource`` defined here, generating
/// its records in code, ingests, resumes, fails and cancels as the built-in sources do.
@Suite struct CustomSourceTests {
    /// What the generated source throws where it is told to fail.
    struct GeneratorFailed: Error, Equatable { let record: Int }

    /// Records `id`, `features` (4 × float32), `label` of the tabular schema, generated.
    final class GeneratedSource: SampleSource {
        let name = "generated"
        let formatName = "generated"
        let count: Int
        /// Records yielded with a text where the schema wants a float32[4] blob.
        let mistyped: Set<Int>
        /// The record at which `next()` throws ``GeneratorFailed``.
        let failAt: Int?
        /// Called before the record at `pauseAt` is yielded (on the ingest's reading thread).
        let pauseAt: Int?
        let onPause: () -> Void
        private var position = 0

        init(count: Int, mistyped: Set<Int> = [], failAt: Int? = nil, pauseAt: Int? = nil, onPause: @escaping () -> Void = {}) {
            self.count = count
            self.mistyped = mistyped
            self.failAt = failAt
            self.pauseAt = pauseAt
            self.onPause = onPause
        }

        var fingerprint: String? { "generated:\(count)" }
        var expectedRecords: Int? { count }
        var contentHash: String? { "generated:\(position)" }

        func next() throws -> SourceItem? {
            guard position < count else { return nil }
            if position == failAt { throw GeneratorFailed(record: position) }
            if position == pauseAt { onPause() }
            defer { position += 1 }
            let id = Int64(position)
            let features = NPY.float32([Float(position), 0.5, -1, 2])
            return .sample([.integer(id), mistyped.contains(position) ? .text("oops") : .blob(features), .integer(id % 4)])
        }
    }

    func options(_ change: (inout IngestOptions) -> Void = { _ in }) -> IngestOptions {
        var options = IngestOptions()
        options.rowsPerTransaction = 10
        change(&options)
        return options
    }

    func storedIDs(_ dataset: Dataset) async throws -> [Int64] {
        try await dataset.samples().compactMap { if case .integer(let id) = $0.values[0] { id } else { nil } }
    }

    @Test func aGeneratedSourceIngestsAndIsLoggedUnderItsFormat() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let seen = Mutex<[Int]>([])
        let summary = try await dataset.ingest(
            from: GeneratedSource(count: 25), schema: try schema(tabularSchemaJSON), options: options(),
            progress: { update in seen.withLock { $0.append(update.recordsRead) } })
        #expect(summary.format == "generated" && summary.source == "generated")
        #expect(summary.rowsAdded == 25 && summary.recordsRead == 25 && summary.datasetVersion == 3)
        #expect(summary.contentHash == "generated:25")
        #expect(seen.withLock { $0 } == [10, 20, 25])
        #expect(try await storedIDs(dataset) == (0..<25).map(Int64.init))
        let entry = try #require(try await dataset.info().ingests.last)
        #expect(entry.format == "generated" && entry.status == "complete" && entry.contentHash == "generated:25")
        #expect(try await dataset.verify().isValid)

        let again = try await dataset.ingest(from: GeneratedSource(count: 25), options: options())
        #expect(again.alreadyIngested && again.rowsAdded == 0)
    }

    @Test func aSourceErrorKeepsCommittedTransactionsAndTheNextRunResumes() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        await #expect(throws: GeneratorFailed(record: 15)) {
            try await dataset.ingest(from: GeneratedSource(count: 25, failAt: 15), schema: try schema(tabularSchemaJSON), options: options())
        }
        #expect(try await storedIDs(dataset) == (0..<10).map(Int64.init))
        let failed = try #require(try await dataset.info().ingests.last)
        #expect(failed.status == "failed" && failed.message?.contains("GeneratorFailed") == true)

        let resumed = try await dataset.ingest(from: GeneratedSource(count: 25), options: options())
        #expect(resumed.resumedFrom == failed.id)
        #expect(resumed.rowsAdded == 15 && resumed.recordsRead == 25)
        #expect(try await storedIDs(dataset) == (0..<25).map(Int64.init))
    }

    @Test func samplesThatBreakTheSchemaAreBadRecordsUnderTheErrorPolicy() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let error = await #expect(throws: MBDataError.self) {
            try await dataset.ingest(from: GeneratedSource(count: 25, mistyped: [13]), schema: try schema(tabularSchemaJSON), options: options())
        }
        #expect(error?.matches(.schemaMismatch, "generated:record 14", "field 'features'", "expected BLOB") == true, "\(String(describing: error))")
        #expect(try await storedIDs(dataset).count == 10)

        let summary = try await dataset.ingest(from: GeneratedSource(count: 25, mistyped: [13, 21]), options: options { $0.onError = .skip; $0.force = true })
        #expect(summary.rowsFailed == 2 && summary.rowsAdded == 13 && summary.rowsSkipped == 10)
        #expect(summary.errors.count == 2 && summary.errors[1].contains("record 22"))
        let ids = try await storedIDs(dataset)
        #expect(ids == (0..<25).filter { $0 != 13 && $0 != 21 }.map(Int64.init))
    }

    @Test func cancellingTheIngestStopsItBetweenRecordsAndTheNextRunResumes() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let tabular = try schema(tabularSchemaJSON)
        let (reached, reachedContinuation) = AsyncStream<Void>.makeStream()
        let resume = DispatchSemaphore(value: 0)
        let outcome = await withTaskGroup(of: Result<IngestSummary, any Error>.self) { group in
            group.addTask {
                do {
                    let paused = GeneratedSource(count: 25, pauseAt: 12) {
                        reachedContinuation.yield()
                        resume.wait()
                    }
                    return .success(try await dataset.ingest(from: paused, schema: tabular, options: options()))
                } catch {
                    return .failure(error)
                }
            }
            // The reader waits at record 12 until the ingest's task is cancelled.
            for await _ in reached { break }
            group.cancelAll()
            resume.signal()
            return await group.next()!
        }
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(try await storedIDs(dataset) == (0..<10).map(Int64.init))
        let interrupted = try #require(try await dataset.info().ingests.last)
        #expect(interrupted.status == "interrupted")

        let resumed = try await dataset.ingest(from: GeneratedSource(count: 25), options: options())
        #expect(resumed.resumedFrom == interrupted.id && resumed.rowsAdded == 15)
        #expect(try await storedIDs(dataset) == (0..<25).map(Int64.init))
    }
}
