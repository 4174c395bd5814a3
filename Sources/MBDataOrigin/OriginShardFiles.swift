import Foundation
import MBData
import Synchronization

/// The shard files of one origin set, read through the cache: a file the cache lacks is
/// downloaded, checked against the manifest's size and hash and against the footer the set
/// was opened with, and only then renamed into place. A file that fails a check refuses the
/// whole set from then on (the origin changed or is corrupt), so that no later batch comes
/// from a set known to be wrong; a connection failure refuses only that batch.
final class OriginShardFiles: ShardFileAccess {
    let origin: HTTPShardOrigin
    let cache: ShardCache
    /// The set's directory in the cache, relative to it.
    let set: String
    let shards: [ShardManifest.Shard]
    /// Per shard, the xxh64 of the footer the set's frames were located with.
    let footerHashes: [UInt64]
    let metrics: OriginMetrics
    let refusal = Mutex<MBDataError?>(nil)

    init(origin: HTTPShardOrigin, cache: ShardCache, set: String, shards: [ShardManifest.Shard], footerHashes: [UInt64], metrics: OriginMetrics) {
        self.origin = origin
        self.cache = cache
        self.set = set
        self.shards = shards
        self.footerHashes = footerHashes
        self.metrics = metrics
    }

    func withFile<R>(shard number: Int, _ body: (ShardFile) throws -> R) throws -> R {
        if let refusal = refusal.withLock({ $0 }) { throw refusal }
        let shard = shards[number]
        let key = set + "/" + shard.file
        return try cache.withFile(key: key, bytes: shard.bytes, xxh64: shard.xxh64, download: { try download(number, to: cache.path(key)) }, body)
    }

    /// The cache may evict a file once no read holds it.
    var pathsOutliveReads: Bool { false }

    private func download(_ number: Int, to path: String) throws {
        // Another reader's download may have refused the set while this one waited for it.
        if let refusal = refusal.withLock({ $0 }) { throw refusal }
        let shard = shards[number]
        let source = origin.location(shard.file)
        let file = ShardDownloadFile(path: path)
        // A file that failed is removed at once (after a commit this does nothing).
        defer { file.discard() }
        do {
            let digest = XXH64.hexDigest(of: try origin.download(shard, into: file))
            guard digest == shard.xxh64 else {
                throw MBDataError(.corruptData, "the shard's bytes hash to \(digest), the manifest says \(shard.xxh64) (changed or corrupt at the origin)", source: source)
            }
            let footer = try ShardFile(path: file.temporaryPath).copy((shard.bytes - ShardFormat.trailerSize)..<shard.bytes)
            let (_, footerHash) = try ShardFormat.decodeTrailer(footer[...], fileSize: shard.bytes, source: source)
            guard footerHash == footerHashes[number] else {
                throw MBDataError(.corruptData, "the shard's footer differs from the one its frames were located with (changed at the origin since the daemon started)", source: source)
            }
            try file.commit()
        } catch let error as MBDataError where error.code != .unavailable && error.code != .storage {
            metrics.refused()
            // The URL without its query (a signature), so that the message can go to clients and logs.
            let refused = MBDataError(.corruptData, "origin set refused: \(origin.url)\(shard.file): \(error.message)", source: error.source ?? source, cause: error)
            refusal.withLock { $0 = $0 ?? refused }
            throw refused
        }
    }
}
