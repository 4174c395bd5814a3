import Foundation

/// Where a shard set's files are read from while a frame is read: open files of a local
/// directory, or a bounded cache that fetches a file before handing it out and keeps it
/// from eviction while `body` runs. Blocks: call it from a worker thread.
package protocol ShardFileAccess: Sendable {
    /// Calls `body` with the open file of the set's `shard`-th shard (manifest order).
    func withFile<R>(shard: Int, _ body: (ShardFile) throws -> R) throws -> R
    /// Whether a shard's path keeps naming the file `withFile` hands out for as long as the
    /// set is served, so that another process may read a frame there (local delivery): true
    /// for a local directory, false for a cache that may evict a file.
    var pathsOutliveReads: Bool { get }
}

/// Every shard file of a local set, opened once.
struct OpenShardFiles: ShardFileAccess {
    let files: [ShardFile]

    init(_ shards: ShardSet) throws {
        files = try shards.manifest.shards.map { try ShardFile(path: (shards.directory as NSString).appendingPathComponent($0.file)) }
    }

    func withFile<R>(shard: Int, _ body: (ShardFile) throws -> R) throws -> R { try body(files[shard]) }

    var pathsOutliveReads: Bool { true }
}
