import Foundation
import MBDataOrigin
import MBDataTestSupport
import Synchronization
import Testing

@testable import MBData

/// The origin cache on its own: bound, eviction and single downloads under concurrent readers.
@Suite struct ShardCacheTests {
    static let fileBytes = 1000

    /// What the readers saw, recorded on the executor's threads and checked by the test
    /// (issues belong to the test's task).
    final class Observations: Sendable {
        /// The most bytes the cache's files (partial downloads included) and a new one held together.
        let largest = Mutex(0)
        let downloads = Mutex([Int: Int]())
        let problems = Mutex([String]())
    }

    /// Fills `path` with `fileBytes` copies of `value`, noting the bytes the cache holds.
    static func download(_ value: Int, to path: String, observations: Observations) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let held = try FileManager.default.contentsOfDirectory(atPath: directory)
            // A file listed may be evicted by another reader before it is measured.
            .compactMap { try? FileManager.default.attributesOfItem(atPath: (directory as NSString).appendingPathComponent($0))[.size] as? Int }
            .reduce(0, +)
        observations.largest.withLock { $0 = max($0, held + fileBytes) }
        try Data(repeating: UInt8(value), count: fileBytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func concurrentReadersNeverPushTheCacheAboveItsBoundNorLoseAFileTheyRead() async throws {
        let directory = try TemporaryDirectory()
        let bound = 3 * Self.fileBytes
        let cache = try ShardCache(directory: directory.path("cache"), capacity: bound, metrics: OriginMetrics())
        _ = try cache.adopt(set: "set", shards: [], keep: [])
        let observations = Observations()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    try await runBlocking {
                        for step in 0..<60 {
                            let value = (step * 7 + worker * 3) % 8
                            let key = "set/f\(value)"
                            try cache.withFile(
                                key: key, bytes: Self.fileBytes, xxh64: "xxh64:0000000000000000",
                                download: {
                                    observations.downloads.withLock { $0[value, default: 0] += 1 }
                                    try Self.download(value, to: cache.path(key), observations: observations)
                                }
                            ) { file in
                                if !FileManager.default.fileExists(atPath: cache.path(key)) {
                                    observations.problems.withLock { $0.append("\(key) evicted while read") }
                                }
                                if try file.copy(0..<Self.fileBytes) != [UInt8](repeating: UInt8(value), count: Self.fileBytes) {
                                    observations.problems.withLock { $0.append("\(key) holds other bytes") }
                                }
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(observations.problems.withLock { $0 } == [])
        #expect(cache.usedBytes <= bound)
        #expect(observations.largest.withLock { $0 } <= bound)
        #expect(observations.downloads.withLock { $0.values.reduce(0, +) } > 8, "files were evicted and fetched again")
    }

    /// A manifest listing `count` files of `fileBytes` bytes, named and hashed as the cache records them.
    static func shards(_ count: Int) -> [ShardManifest.Shard] {
        (0..<count).map { ShardManifest.Shard(file: "f\($0)", bytes: fileBytes, xxh64: "xxh64:000000000000000\($0)", batches: 1) }
    }

    /// Reads every file of `shards` in `set` once, downloading what the cache lacks.
    static func readAll(_ cache: ShardCache, set: String, _ shards: [ShardManifest.Shard]) throws {
        for (value, shard) in shards.enumerated() {
            let key = set + "/" + shard.file
            try cache.withFile(
                key: key, bytes: shard.bytes, xxh64: shard.xxh64,
                download: { try Data(repeating: UInt8(value), count: fileBytes).write(to: URL(fileURLWithPath: cache.path(key))) }
            ) { _ in }
        }
    }

    @Test func aReopenedCacheKeepsItsVerifiedFilesCountsOtherSetsAndDropsWhatChanged() throws {
        let directory = try TemporaryDirectory()
        let bound = 4 * Self.fileBytes
        do {
            let cache = try ShardCache(directory: directory.path("cache"), capacity: bound, metrics: OriginMetrics())
            _ = try cache.adopt(set: "a", shards: Self.shards(2), keep: [])
            _ = try cache.adopt(set: "b", shards: Self.shards(2), keep: [])
            try Self.readAll(cache, set: "a", Self.shards(2))
            try Self.readAll(cache, set: "b", Self.shards(2))
            #expect(cache.usedBytes == bound)
        }
        // Edited in place since: no longer as recorded.
        try Data(repeating: 9, count: Self.fileBytes).write(to: directory.file("cache/a/f1"))
        let cache = try ShardCache(directory: directory.path("cache"), capacity: bound, metrics: OriginMetrics())
        #expect(cache.usedBytes == 3 * Self.fileBytes, "set b's files count though b is not opened")
        #expect(try cache.adopt(set: "a", shards: Self.shards(2), keep: []) == [0])
        #expect(!FileManager.default.fileExists(atPath: directory.path("cache/a/f1")))
        // A manifest listing f0 otherwise: not held, deleted.
        var changed = Self.shards(1)
        changed[0].xxh64 = "xxh64:00000000000000ff"
        #expect(try cache.adopt(set: "a", shards: changed, keep: []) == [])
        #expect(cache.usedBytes == 2 * Self.fileBytes)
        // Room for a new set comes from b's files, least recently used first.
        #expect(try cache.adopt(set: "c", shards: Self.shards(3), keep: []) == [])
        try Self.readAll(cache, set: "c", Self.shards(3))
        #expect(cache.usedBytes <= bound)
    }

    @Test func aFileLargerThanTheCacheIsRefusedWithoutDownloading() throws {
        let directory = try TemporaryDirectory()
        let cache = try ShardCache(directory: directory.path("cache"), capacity: 100, metrics: OriginMetrics())
        let error = #expect(throws: MBDataError.self) {
            try cache.withFile(key: "set/big", bytes: 101, xxh64: "xxh64:0000000000000000", download: { Issue.record("downloaded") }) { _ in }
        }
        #expect(error?.code == .limitExceeded)
    }

    @Test func aSecondProcessCannotUseTheSameCache() throws {
        let directory = try TemporaryDirectory()
        let first = try ShardCache(directory: directory.path("cache"), capacity: 100, metrics: OriginMetrics())
        // flock locks belong to the open file description: a second open in this process conflicts too.
        #expect(throws: MBDataError.self) { try ShardCache(directory: directory.path("cache"), capacity: 100, metrics: OriginMetrics()) }
        _ = first
    }

    @Test(arguments: [("10G", 10 << 30), ("500M", 500 << 20), ("1048576", 1 << 20), ("4KiB", 4096), ("2TB", 2 << 40)])
    func byteCountsTakeBinarySuffixes(text: String, bytes: Int) throws {
        #expect(try ShardOriginConfiguration.parseByteCount(text) == bytes)
    }

    @Test(arguments: ["", "G", "10X", "-1G", "1.5G", "99999999999999999999T"])
    func otherByteCountsAreRefused(text: String) {
        #expect(throws: MBDataError.self) { try ShardOriginConfiguration.parseByteCount(text) }
    }
}
