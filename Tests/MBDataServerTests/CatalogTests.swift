import Foundation
import MBData
import MBDataTestSupport
import Testing

@testable import MBDataServer

@Suite struct CatalogTests {
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
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let store = try CursorStore(path: directory.path("state.sqlite"))
        let catalog = try DatasetCatalog(configuration: ServeConfiguration(datasets: [("digits", path)], statePath: directory.path("state.sqlite")), store: store)
        let served = try await catalog.served("digits")
        let parameters = PlanParameters(seed: 1, batchSize: 32)
        let first = try await catalog.plan(dataset: served, group: "run-1", parameters: parameters)
        #expect(try await catalog.plan(dataset: served, group: "run-2", parameters: parameters).fingerprint == first.fingerprint)

        for seed in 2..<40 {  // more plans than the cache holds
            _ = try await catalog.plan(dataset: served, group: "other", parameters: PlanParameters(seed: UInt64(seed), batchSize: 32))
        }
        _ = try await Dataset(path: path).ingest(SourceSpec(paths: [try directory.write("more.jsonl", Self.oneMoreDigit)]))
        let again = try await catalog.plan(dataset: served, group: "run-1", parameters: parameters)
        #expect(again.fingerprint == first.fingerprint)
        #expect(again.datasetVersion == first.datasetVersion)
        let newcomer = try await catalog.plan(dataset: served, group: "run-3", parameters: parameters)
        #expect(newcomer.datasetVersion == first.datasetVersion + 1)
    }

    static let oneMoreDigit =
        "{\"id\": 5000, \"image\": [[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0]], \"label\": 1}\n"
}
