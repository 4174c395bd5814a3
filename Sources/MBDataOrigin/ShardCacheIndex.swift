import Foundation
import MBData

/// `index.json` of a cache directory: every shard file the cache verified, with what a later
/// start compares instead of hashing the file again — its size, hash, inode and modification
/// time as they were when it was verified. A file missing from it, or whose inode, size or
/// time changed, is deleted and fetched again when needed.
struct ShardCacheIndex: Codable, Sendable, Equatable {
    struct Record: Codable, Sendable, Equatable {
        var bytes: Int
        var xxh64: String
        var inode: UInt64
        var modifiedNanoseconds: Int64
    }

    static let formatName = "mbdata-shard-cache-1"
    static let fileName = "index.json"

    var format = formatName
    /// By path relative to the cache directory: `<set>/shard-00000.mbshard`.
    var files: [String: Record] = [:]

    /// The index at `path`; an empty one when there is none or it cannot be read (then every
    /// cached file is fetched again: nothing unverified is trusted).
    static func load(_ path: String) -> ShardCacheIndex {
        guard let data = FileManager.default.contents(atPath: path),
            let index = try? JSONDecoder().decode(ShardCacheIndex.self, from: data), index.format == formatName
        else { return ShardCacheIndex() }
        return index
    }

    func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(self)
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data), rename(temporary, path) == 0 else {
            throw MBDataError(.storage, "cannot write the cache index", source: path)
        }
    }

    /// The record of the file at `path` as it is on disk now, or nil when it cannot be stat'ed.
    static func record(of path: String, xxh64: String) -> Record? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Record(
            bytes: Int(info.st_size), xxh64: xxh64, inode: UInt64(info.st_ino),
            modifiedNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
