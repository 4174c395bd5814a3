import Foundation
import MBData
import MBDataTestSupport
import Testing

@testable import MBDataServer

@Suite struct CatalogTests {
    /// The digits dataset served by a catalog whose state database is in the same folder.
    static func digitsCatalog() async throws -> (TemporaryDirectory, String, SQLiteStateStore, DatasetCatalog, DatasetCatalog.Served) {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"))
        let catalog = try DatasetCatalog(configuration: ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite")), store: store)
        return (directory, path, store, catalog, try await catalog.served("digits"))
    }

    @Test func theLeastRecentlyUsedEntryMakesRoom() {
        var cache = RecentlyUsed<String, Int>(capacity: 2)
        cache.insert(1, for: "a")
        cache.insert(2, for: "b")
        #expect(cache.value(for: "a") == 1)  // "b" is now the oldest
        cache.insert(3, for: "c")
        #expect(cache.count == 2)
        #expect(cache.value(for: "b") == nil)
        #expect(cache.value(for: "a") == 1)
        #expect(cache.value(for: "c") == 3)
        cache.insert(4, for: "c")  // replacing keeps both
        #expect(cache.value(for: "a") == 1)
        #expect(cache.value(for: "c") == 4)
    }

    /// Plans leave the cache, pins do not: a group keeps the dataset version it started on
    /// after its plan was evicted and the dataset grew, and a new group gets the new version
    /// (the pins were once keyed by a NUL-separated text that SQLite cut at the dataset name,
    /// so every group stayed on the first version the daemon saw).
    @Test func aGroupKeepsItsPinnedVersionAfterItsPlanWasEvicted() async throws {
        let (directory, path, _, catalog, served) = try await Self.digitsCatalog()
        let parameters = PlanParameters(seed: 1, batchSize: 32)
        let first = try await catalog.pinnedPlan(dataset: served, group: "run-1", parameters: parameters)
        #expect(try await catalog.pinnedPlan(dataset: served, group: "run-2", parameters: parameters).fingerprint == first.fingerprint)

        for seed in 2..<40 {  // more plans than the cache holds
            _ = try await catalog.pinnedPlan(dataset: served, group: "other", parameters: PlanParameters(seed: UInt64(seed), batchSize: 32))
        }
        _ = try await Dataset(path: path).ingest(SourceSpec(paths: [try directory.write("more.jsonl", Self.oneMoreDigit)]))
        let again = try await catalog.pinnedPlan(dataset: served, group: "run-1", parameters: parameters)
        #expect(again.fingerprint == first.fingerprint)
        #expect(again.datasetVersion == first.datasetVersion)
        let newcomer = try await catalog.pinnedPlan(dataset: served, group: "run-3", parameters: parameters)
        #expect(newcomer.datasetVersion == first.datasetVersion + 1)
    }

    /// A new consumer group's first batch must not wait for a scan of the dataset's ids: the
    /// daemon reads them once per split and version, ahead of the first request, and every
    /// plan over them — any seed, batch size or order — is made from that read.
    @Test func aNewGroupsPlanScansNoIdsOnceTheCatalogIsWarm() async throws {
        let (directory, path, _, catalog, served) = try await Self.digitsCatalog()
        await catalog.warm()
        #expect(await catalog.idScans == 1)
        for seed in 1...5 {
            _ = try await catalog.pinnedPlan(dataset: served, group: "run-\(seed)", parameters: PlanParameters(seed: UInt64(seed), batchSize: 32))
        }
        _ = try await catalog.pinnedPlan(dataset: served, group: "ordered", parameters: PlanParameters(batchSize: 16, shuffle: false))
        #expect(await catalog.idScans == 1)
        _ = try await Dataset(path: path).ingest(SourceSpec(paths: [try directory.write("more.jsonl", Self.oneMoreDigit)]))
        _ = try await catalog.pinnedPlan(dataset: served, group: "newcomer", parameters: PlanParameters(seed: 1, batchSize: 32))
        #expect(await catalog.idScans == 2, "a new dataset version is read once")
    }

    /// Resolving a plan writes nothing: a request refused after it (429, 409) leaves no pin,
    /// so the group starts on the version current when a request of it is first admitted.
    @Test func resolvingAPlanPinsNothingUntilThePinIsWritten() async throws {
        let (_, _, store, catalog, served) = try await Self.digitsCatalog()
        let parameters = PlanParameters(seed: 1, batchSize: 32)
        let key = ["digits", "run-1", parameters.key].joined(separator: "|")
        let resolved = try await catalog.plan(dataset: served, group: "run-1", parameters: parameters)
        #expect(try await store.pinnedVersion(key: key) == nil)
        _ = try await catalog.pin(dataset: served, group: "run-1", plan: resolved)
        #expect(try await store.pinnedVersion(key: key) == resolved.datasetVersion)
    }

    static let oneMoreDigit =
        "{\"id\": 5000, \"image\": [[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0]], \"label\": 1}\n"
}
