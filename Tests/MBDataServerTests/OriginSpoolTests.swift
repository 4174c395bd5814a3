import AsyncHTTPClient
import Foundation
import MBDataOrigin
import MBDataTestSupport
import NIOCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@testable import MBData
@testable import MBDataClient
@testable import MBDataServer

/// `serve --spool http://…/set/`: a shard set served by a real nginx, fetched into the cache
/// on demand and verified before a byte is served.
@Suite(.enabled(if: NginxServer.isInstalled, "nginx is not installed: make deps"))
struct OriginSpoolTests {
    /// The digits dataset, sharded (train split, one epoch, several shards) into `origin/set`,
    /// the directory nginx serves.
    struct Fixture {
        let directory: TemporaryDirectory
        let dataset: String
        let set: String
        let manifest: ShardManifest

        static func make(shardBytes: Int = 30_000) async throws -> Fixture {
            let directory = try TemporaryDirectory()
            let path = try await digitsDataset(directory)
            let dataset = try Dataset(path: path)
            let plan = try await dataset.plan(OriginSpoolTests.loaderConfiguration.plan)
            let prefetcher = try await Prefetcher(dataset: dataset, plan: plan, epochs: 0..<1)
            let set = directory.path("origin/set")
            let manifest = try await ShardWriter.write(
                prefetcher, schema: try #require(try await dataset.schema()), to: set, targetShardBytes: shardBytes)
            return Fixture(directory: directory, dataset: path, set: set, manifest: manifest)
        }

        /// A daemon serving the digits dataset with `spool`, its state in a file of its own.
        func configuration(spool: [String], cacheBytes: Int = 10 << 30, state: String = UUID().uuidString) -> ServeConfiguration {
            var configuration = ServeConfiguration(datasets: [("digits", dataset)], state: directory.path("\(state).sqlite"))
            configuration.spool = spool
            configuration.origin = ShardOriginConfiguration(cacheDirectory: directory.path("cache"))
            configuration.origin.cacheBytes = cacheBytes
            configuration.origin.firstBackoff = .milliseconds(10)
            return configuration
        }

        var shardBytes: [Int] { manifest.shards.map(\.bytes) }

        /// Changes one byte of `file` at the origin: by default in its first frame.
        func alter(_ file: String, at offset: UInt64 = 100) throws {
            let handle = try #require(FileHandle(forUpdatingAtPath: (set as NSString).appendingPathComponent(file)))
            defer { try? handle.close() }
            try handle.seek(toOffset: offset)
            let byte = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: [byte ^ 0xFF])
        }

        /// Cuts `bytes` off the end of `file` at the origin.
        func truncate(_ file: String, by bytes: Int) throws {
            let path = (set as NSString).appendingPathComponent(file)
            let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(Glibc.truncate(path, off_t(size - bytes)) == 0)
        }
    }

    static var loaderConfiguration: MultiBatchLoader.Configuration {
        var configuration = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<1)
        configuration.split = "train"
        configuration.concurrency = 4
        return configuration
    }

    /// Every batch of the epoch through a daemon at `url`, by call.
    static func batches(_ url: String) async throws -> [RecordingTrainer.Call: [Int64]] {
        let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
        try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits", reconnects: 0), configuration: loaderConfiguration)
            .run(trainer: trainer)
        return await trainer.batches
    }

    /// A counter or gauge of the daemon's `/metrics` (without labels).
    static func metric(_ name: String, at url: String) async throws -> Double {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") }, "\(name) in /metrics")
        return try #require(Double(line.split(separator: " ")[1]))
    }

    static func shardRequests(_ nginx: NginxServer) -> Int {
        nginx.requests().filter { $0.contains("/shard-") }.count
    }

    @Test func anOriginSetServesTheLocalSpoolsBatchesAndAWarmRestartDownloadsNothing() async throws {
        let fixture = try await Fixture.make()
        #expect(fixture.manifest.shards.count > 2)
        let local = try await withServer(fixture.configuration(spool: [fixture.set])) { url in try await Self.batches(url) }
        #expect(local.count == 1449 / 64)

        let nginx = try await NginxServer(root: fixture.directory.path("origin"))
        defer { nginx.stop() }
        let origin = "\(nginx.url)/set/"
        let cold = try await withServer(fixture.configuration(spool: [origin])) { url in
            let batches = try await Self.batches(url)
            #expect(try await Self.metric("mbdata_origin_cache_misses_total", at: url) == Double(fixture.manifest.shards.count))
            #expect(try await Self.metric("mbdata_origin_bytes_fetched_total", at: url) >= Double(fixture.shardBytes.reduce(0, +)))
            #expect(try await Self.metric("mbdata_origin_refusals_total", at: url) == 0)
            return batches
        }
        #expect(cold == local)
        let downloads = nginx.requests().filter { $0.hasPrefix("GET /set/shard-") && $0.hasSuffix(" 200") }
        #expect(downloads.count == fixture.manifest.shards.count, "each shard downloaded once: \(downloads)")

        // Warm: the cached files verify by their recorded size, inode and time; only the manifest is asked for.
        let before = nginx.requests().count
        let warm = try await withServer(fixture.configuration(spool: [origin])) { url in
            let batches = try await Self.batches(url)
            #expect(try await Self.metric("mbdata_origin_cache_misses_total", at: url) == 0)
            #expect(try await Self.metric("mbdata_origin_cache_hits_total", at: url) >= Double(local.count))
            return batches
        }
        #expect(warm == local)
        #expect(Array(nginx.requests()[before...]) == ["GET /set/manifest.json HTTP/1.1 200"])
    }

    @Test func aCacheSmallerThanTheSetServesEveryBatchAndStaysWithinItsBound() async throws {
        let fixture = try await Fixture.make(shardBytes: 4_000)
        #expect(fixture.manifest.shards.count > 8, "more files than footers are located at once")
        let local = try await withServer(fixture.configuration(spool: [fixture.set])) { url in try await Self.batches(url) }
        let nginx = try await NginxServer(root: fixture.directory.path("origin"))
        defer { nginx.stop() }
        // Room for the two largest files; the set is larger.
        let bound = fixture.shardBytes.sorted().suffix(2).reduce(0, +)
        #expect(bound < fixture.shardBytes.reduce(0, +))
        let served = try await withServer(fixture.configuration(spool: ["\(nginx.url)/set/"], cacheBytes: bound)) { url in
            let batches = try await Self.batches(url)
            #expect(try await Self.metric("mbdata_origin_cache_evictions_total", at: url) > 0)
            #expect(try await Self.metric("mbdata_origin_cache_bytes", at: url) <= Double(bound))
            return batches
        }
        #expect(served == local)
        let cached = try FileManager.default.subpathsOfDirectory(atPath: fixture.directory.path("cache"))
            .filter { $0.hasSuffix(".mbshard") }
            .map { try #require(try FileManager.default.attributesOfItem(atPath: fixture.directory.path("cache/" + $0))[.size] as? Int) }
        #expect(cached.reduce(0, +) <= bound)
    }

    @Test func anAlteredByteAtTheOriginIsRefusedAndNothingWrongIsServed() async throws {
        let fixture = try await Fixture.make()
        let local = try await withServer(fixture.configuration(spool: [fixture.set])) { url in try await Self.batches(url) }
        let nginx = try await NginxServer(root: fixture.directory.path("origin"))
        defer { nginx.stop() }
        // A frame byte: the footers (read by range at start) still check; the file's hash does not.
        try fixture.alter(fixture.manifest.shards[1].file)
        try await withServer(fixture.configuration(spool: ["\(nginx.url)/set/"])) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
            let error = await #expect(throws: MBDataError.self) {
                try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits", reconnects: 0), configuration: Self.loaderConfiguration)
                    .run(trainer: trainer)
            }
            #expect(error?.message.contains("hash") == true, "\(String(describing: error))")
            #expect(error?.message.contains("\(nginx.url)/set/\(fixture.manifest.shards[1].file)") == true, "names the file's URL")
            // What was served before the refusal is exactly the local spool's.
            for (call, ids) in await trainer.batches { #expect(local[call] == ids) }
            #expect(try await Self.metric("mbdata_origin_refusals_total", at: url) >= 1)
            let cached = try FileManager.default.subpathsOfDirectory(atPath: fixture.directory.path("cache"))
            #expect(!cached.contains { $0.hasSuffix(fixture.manifest.shards[1].file) }, "a refused file never enters the cache: \(cached)")
        }
    }

    @Test func aTruncatedShardIsRefusedAtStartAndWhenFetched() async throws {
        let fixture = try await Fixture.make()
        let nginx = try await NginxServer(root: fixture.directory.path("origin"))
        defer { nginx.stop() }
        let origin = "\(nginx.url)/set/"
        // Truncated after the daemon located the frames: the Content-Length is refused.
        try await withServer(fixture.configuration(spool: [origin])) { url in
            try fixture.truncate(fixture.manifest.shards[0].file, by: 10)
            let error = await #expect(throws: MBDataError.self) { _ = try await Self.batches(url) }
            #expect(error?.message.contains("Content-Length") == true, "\(String(describing: error))")
        }
        // Truncated before: the footer cannot be located, the daemon refuses the set.
        await #expect(throws: MBDataError.self) {
            try await withServer(fixture.configuration(spool: [origin])) { _ in }
        }
    }

    @Test func anAlteredFooterAtTheOriginIsRefusedAtStart() async throws {
        let fixture = try await Fixture.make()
        let nginx = try await NginxServer(root: fixture.directory.path("origin"))
        defer { nginx.stop() }
        // The footer's last byte: the daemon reads footers by range at start, before any whole file.
        let shard = fixture.manifest.shards[1]
        try fixture.alter(shard.file, at: UInt64(shard.bytes - ShardFormat.trailerSize - 1))
        let error = await #expect(throws: MBDataError.self) {
            try await withServer(fixture.configuration(spool: ["\(nginx.url)/set/"])) { _ in }
        }
        #expect(error?.code == .corruptData, "\(String(describing: error))")
        #expect(error?.source?.hasSuffix("/set/\(shard.file)") == true, "names the file's URL: \(String(describing: error))")
        #expect(Self.shardRequests(nginx) <= 2 * fixture.manifest.shards.count, "nothing but footers was fetched")
    }

    @Test func aManifestThatChangedAtTheOriginOrIsInvalidIsRefused() async throws {
        let fixture = try await Fixture.make()
        let nginx = try await NginxServer(root: fixture.directory.path("origin"))
        defer { nginx.stop() }
        let origin = "\(nginx.url)/set/"
        try await withServer(fixture.configuration(spool: [origin])) { _ in }
        let manifestPath = (fixture.set as NSString).appendingPathComponent(ShardManifest.fileName)
        var changedManifest = fixture.manifest
        changedManifest.createdAt = "2000-01-01T00:00:00.000Z"
        try ShardManifest.encoder.encode(changedManifest).write(to: URL(fileURLWithPath: manifestPath))
        let changed = await #expect(throws: MBDataError.self) {
            try await withServer(fixture.configuration(spool: [origin])) { _ in }
        }
        #expect(changed?.message.contains("differs from the one cached") == true, "\(String(describing: changed))")

        // A manifest that contradicts itself is refused like a local one, with a fresh cache.
        var invalidManifest = fixture.manifest
        invalidManifest.plan.batchesPerEpoch += 1
        try ShardManifest.encoder.encode(invalidManifest).write(to: URL(fileURLWithPath: manifestPath))
        var configuration = fixture.configuration(spool: [origin])
        configuration.origin.cacheDirectory = fixture.directory.path("fresh-cache")
        let invalid = await #expect(throws: MBDataError.self) {
            try await withServer(configuration) { _ in }
        }
        #expect(invalid?.code == .corruptData, "\(String(describing: invalid))")
    }

    @Test func anUnreachableOriginIsRetriedThenReported() async throws {
        let fixture = try await Fixture.make()
        var configuration = fixture.configuration(spool: ["http://127.0.0.1:\(try NginxServer.freePort())/set/"])
        configuration.origin.attempts = 2
        configuration.origin.connectTimeoutSeconds = 1
        let error = await #expect(throws: MBDataError.self) {
            try await withServer(configuration) { _ in }
        }
        #expect(error?.code == .unavailable)
        #expect(error?.source?.hasSuffix("/set/manifest.json") == true, "\(String(describing: error))")
        #expect(error?.message.contains("gave up after 2 attempts") == true, "\(String(describing: error))")
    }
}
