import AsyncHTTPClient
import CoreMetrics
import Foundation
import MBData
import NIOCore
import NIOPosix

/// The shard sets a daemon serves from HTTP origins, sharing one HTTP client, one cache and
/// its writer threads. ``shutDown()`` once when done.
package final class ShardOrigins: Sendable {
    /// The sets opened, in the order their URLs were given.
    package let sets: [SpoolBatchProducer]
    /// The cache the sets' files are read through.
    package let cache: ShardCache
    private let client: HTTPClient
    private let writers: NIOThreadPool

    private init(sets: [SpoolBatchProducer], cache: ShardCache, client: HTTPClient, writers: NIOThreadPool) {
        self.sets = sets
        self.cache = cache
        self.client = client
        self.writers = writers
    }

    /// Opens every set at `urls`: fetches and validates each manifest, refuses one that
    /// differs from the manifest cached for that URL, and locates every frame from the
    /// footers of cached files or, for files not cached, by range requests for the footers.
    /// No shard file is downloaded until a batch of it is asked for.
    ///
    /// - Throws: `MBDataError`: `.unavailable` when an origin cannot be reached,
    ///   `.corruptData`/`.invalidDataset` when a manifest or footer fails a check or the set
    ///   changed at its origin, `.storage` when the cache cannot be used.
    package static func open(
        _ urls: [String], configuration: ShardOriginConfiguration, metricsFactory: any MetricsFactory
    ) async throws -> ShardOrigins {
        let metrics = OriginMetrics(factory: metricsFactory)
        let cache = try await runBlocking {
            try ShardCache(directory: configuration.cacheDirectory, capacity: configuration.cacheBytes, metrics: metrics)
        }
        let writers = NIOThreadPool(numberOfThreads: 2)
        writers.start()
        let timeout = HTTPClient.Configuration.Timeout(
            connect: .seconds(Int64(configuration.connectTimeoutSeconds)), read: .seconds(Int64(configuration.readTimeoutSeconds)))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: timeout))
        do {
            var sets: [SpoolBatchProducer] = []
            for url in urls {
                let origin = try HTTPShardOrigin(url: url, client: client, writers: writers, configuration: configuration, metrics: metrics)
                do {
                    sets.append(try await openSet(origin, cache: cache, metrics: metrics))
                } catch let error as MBDataError where error.code != .unavailable && error.code != .storage {
                    metrics.refused()
                    throw error
                }
            }
            return ShardOrigins(sets: sets, cache: cache, client: client, writers: writers)
        } catch {
            try? await client.shutdown()
            try? await writers.shutdownGracefully()
            throw error
        }
    }

    /// Shuts the HTTP client and the writer threads down; the sets fail from then on.
    package func shutDown() async {
        try? await client.shutdown()
        try? await writers.shutdownGracefully()
    }

    /// Footers located at the same time when a set opens.
    static let footerRequests = 8

    /// The cache directory of the set at `url`: readable, and distinct per URL.
    static func cacheKey(_ url: String) -> String {
        let readable = url.split(separator: "://", maxSplits: 1).last.map(String.init) ?? url
        let safe = String(readable.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") ? $0 : "_" }.prefix(80))
        return safe + "-" + XXH64.hex(XXH64.digest(Array(url.utf8)))
    }

    private static func openSet(_ origin: HTTPShardOrigin, cache: ShardCache, metrics: OriginMetrics) async throws -> SpoolBatchProducer {
        let manifestURL = origin.location(ShardManifest.fileName)
        let bytes = try await origin.fetch(ShardManifest.fileName, limit: ShardSet.maxManifestBytes)
        let manifest = try ShardManifest.parse(bytes, source: manifestURL)
        let set = cacheKey(origin.url)
        let directory = cache.path(set)
        let held = try await runBlocking {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let cachedPath = (directory as NSString).appendingPathComponent(ShardManifest.fileName)
            if let cached = FileManager.default.contents(atPath: cachedPath) {
                guard [UInt8](cached) == bytes else {
                    throw MBDataError(
                        .invalidDataset,
                        "the origin's manifest differs from the one cached when this set was first fetched (\(cachedPath)): the set changed at its origin; remove \(directory) to serve the new one",
                        source: manifestURL)
                }
            } else {
                try DurableFile.replace(cachedPath, with: Data(bytes))
            }
            return try cache.adopt(set: set, shards: manifest.shards, keep: [ShardManifest.fileName])
        }
        // The footers of many shards, a few requests at a time: start-up is not one round trip per file.
        var footers = [([ShardFormat.Entry], UInt64)?](repeating: nil, count: manifest.shards.count)
        try await withThrowingTaskGroup(of: (Int, ([ShardFormat.Entry], UInt64)).self) { group in
            for (number, shard) in manifest.shards.enumerated() {
                if number >= footerRequests, let (done, footer) = try await group.next() { footers[done] = footer }
                group.addTask {
                    let footer = try await held.contains(number)
                        ? runBlocking { try localFooter(cache.path(set + "/" + shard.file), bytes: shard.bytes) }
                        : remoteFooter(origin, shard)
                    return (number, footer)
                }
            }
            for try await (done, footer) in group { footers[done] = footer }
        }
        let entries = footers.map { $0!.0 }
        let footerHashes = footers.map { $0!.1 }
        let shards = try ShardSet(directory: directory, manifest: manifest, entries: entries)
        let files = OriginShardFiles(origin: origin, cache: cache, set: set, shards: manifest.shards, footerHashes: footerHashes, metrics: metrics)
        return SpoolBatchProducer(shards: shards, files: files)
    }

    private static func localFooter(_ path: String, bytes: Int) throws -> ([ShardFormat.Entry], UInt64) {
        let trailer = try ShardFile(path: path).copy((bytes - ShardFormat.trailerSize)..<bytes)
        let (_, hash) = try ShardFormat.decodeTrailer(trailer[...], fileSize: bytes, source: path)
        return (try ShardSet.readFooter(path: path, expectedBytes: bytes), hash)
    }

    /// The footer of a shard not cached: its trailer, then the footer it locates, by range.
    private static func remoteFooter(_ origin: HTTPShardOrigin, _ shard: ShardManifest.Shard) async throws -> ([ShardFormat.Entry], UInt64) {
        let source = origin.location(shard.file)
        let trailer = try await origin.fetch(shard.file, range: (shard.bytes - ShardFormat.trailerSize)..<shard.bytes)
        let (length, hash) = try ShardFormat.decodeTrailer(trailer[...], fileSize: shard.bytes, source: source)
        let footerStart = shard.bytes - ShardFormat.trailerSize - length
        let footer = try await origin.fetch(shard.file, range: footerStart..<(shard.bytes - ShardFormat.trailerSize))
        return (try ShardFormat.decodeFooter(footer, hash: hash, framesEnd: footerStart, source: source), hash)
    }
}
