import Foundation
import MBData

#if canImport(Glibc)
    import Glibc
#endif

/// A bounded directory of verified shard files fetched from origins.
///
/// A file enters the cache only after it was verified (the caller's `download` checks size and
/// hash against the manifest before it is renamed into place), so a reader never sees an
/// unverified byte. To make room for a download, least recently read whole files are evicted,
/// never one being read; a download waits while every file is being read. The files' bytes
/// never exceed ``capacity``, downloads in flight counted. `index.json` records what was
/// verified, so that a restarted daemon keeps its cache without hashing it again
/// (``ShardCacheIndex``). One process uses a cache directory at a time (an exclusive lock).
///
/// Every method blocks (file I/O, waiting for room): call them from a worker thread.
package final class ShardCache: @unchecked Sendable {
    /// The cache directory.
    package let directory: String
    /// The bytes of shard files the cache holds at most.
    package let capacity: Int
    private let metrics: OriginMetrics
    private let lock: Int32

    private enum State {
        case downloading
        case present(ShardFile, pins: Int)
    }

    private struct Entry {
        var state: State
        var bytes: Int
        var lastUse: UInt64
    }

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var entries: [String: Entry] = [:]
    private var index: ShardCacheIndex
    private var used = 0
    private var clock: UInt64 = 0

    /// Opens (creating) the cache directory and takes its lock.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the directory cannot be
    ///   created or another process holds it.
    package init(directory: String, capacity: Int, metrics: OriginMetrics) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw MBDataError(.storage, "cannot create the shard cache", source: directory, cause: error)
        }
        let lockPath = (directory as NSString).appendingPathComponent("lock")
        let lock = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw MBDataError(.storage, "cannot open the cache lock: \(String(cString: strerror(errno)))", source: lockPath) }
        // A lock held a moment longer than its owner — a predecessor still exiting, or a child this
        // process forks holding the descriptor until its exec closes it — is waited for, up to 2 s.
        var locked = flock(lock, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<100 where !locked {
            usleep(20_000)
            locked = flock(lock, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            close(lock)
            throw MBDataError(.storage, "another process uses this shard cache; give each daemon a cache directory of its own", source: directory)
        }
        self.lock = lock
        self.directory = directory
        self.capacity = capacity
        self.metrics = metrics
        index = ShardCacheIndex.load((directory as NSString).appendingPathComponent(ShardCacheIndex.fileName))
        try condition.withLock { try takeRecordedFiles() }
    }

    /// Counts every file the index records and that is still as recorded — of sets this run
    /// may never open too, so that the bound covers the whole directory — oldest first in
    /// line for eviction; forgets (and deletes) the others. Called with `condition` locked.
    private func takeRecordedFiles() throws {
        for (key, record) in index.files.sorted(by: { $0.key < $1.key }) {
            let filePath = path(key)
            if ShardCacheIndex.record(of: filePath, xxh64: record.xxh64) == record, let file = try? ShardFile(path: filePath) {
                entries[key] = Entry(state: .present(file, pins: 0), bytes: record.bytes, lastUse: 0)
                used += record.bytes
            } else {
                index.files[key] = nil
                unlink(filePath)
            }
        }
        // A cache made smaller since the last run.
        while used > capacity, evictLeastRecentlyUsed() {}
        try index.save(indexPath)
        metrics.cached(used)
    }

    deinit { close(lock) }

    private var indexPath: String { (directory as NSString).appendingPathComponent(ShardCacheIndex.fileName) }

    /// The path of a cache file by its key (`<set>/<file>`).
    package func path(_ key: String) -> String { (directory as NSString).appendingPathComponent(key) }

    /// Bytes of the files held and being downloaded.
    package var usedBytes: Int { condition.withLock { used } }

    /// The shards of `set` the cache holds as verified for this manifest: files whose record
    /// matches the manifest's size and hash (the record matched the file when the cache
    /// opened), found without reading them. Deletes every other file in the set's directory
    /// but `keep`: a leftover download, a file the manifest does not list or lists otherwise.
    ///
    /// - Returns: The indices of the shards held.
    package func adopt(set: String, shards: [ShardManifest.Shard], keep: Set<String>) throws -> Set<Int> {
        let setDirectory = path(set)
        do {
            try FileManager.default.createDirectory(atPath: setDirectory, withIntermediateDirectories: true)
        } catch {
            throw MBDataError(.storage, "cannot create the shard cache", source: setDirectory, cause: error)
        }
        return try condition.withLock {
            var held: Set<Int> = []
            var heldKeys: Set<String> = []
            for (number, shard) in shards.enumerated() {
                let key = set + "/" + shard.file
                if entries[key] != nil, let record = index.files[key], record.bytes == shard.bytes, record.xxh64 == shard.xxh64 {
                    held.insert(number)
                    heldKeys.insert(key)
                }
            }
            for key in entries.keys where key.hasPrefix(set + "/") && !heldKeys.contains(key) {
                remove(key)
            }
            for name in (try? FileManager.default.contentsOfDirectory(atPath: setDirectory)) ?? []
            where !keep.contains(name) && entries[set + "/" + name] == nil {
                unlink((setDirectory as NSString).appendingPathComponent(name))
            }
            try index.save(indexPath)
            metrics.cached(used)
            return held
        }
    }

    /// Calls `body` with the open file of `key` (`<set>/<file>`), first fetching it with
    /// `download` when the cache does not hold it — after making room, and once however many
    /// threads ask at the same time. The file is not evicted while `body` runs.
    ///
    /// - Parameters:
    ///   - bytes: The file's size (the manifest's), reserved before the download.
    ///   - xxh64: The file's hash (the manifest's), recorded in the index.
    ///   - download: Fetches, verifies and commits the file to ``path(_:)`` of `key`; blocks.
    /// - Throws: `download`'s error, or `MBDataError` with `MBDataError.Code.limitExceeded`
    ///   when the file is larger than the whole cache.
    package func withFile<R>(key: String, bytes: Int, xxh64: String, download: () throws -> Void, _ body: (ShardFile) throws -> R) throws -> R {
        guard bytes <= capacity else {
            throw MBDataError(
                .limitExceeded, "a shard of \(bytes) bytes does not fit a shard cache of \(capacity) bytes; give the cache more room",
                source: path(key))
        }
        condition.lock()
        var counted = false
        while true {
            if let entry = entries[key] {
                switch entry.state {
                case .present(let file, let pins):
                    clock += 1
                    entries[key] = Entry(state: .present(file, pins: pins + 1), bytes: entry.bytes, lastUse: clock)
                    if !counted { metrics.hit() }
                    condition.unlock()
                    defer { unpin(key) }
                    return try body(file)
                case .downloading:
                    condition.wait()
                    continue
                }
            }
            guard used + bytes <= capacity else {
                if !evictLeastRecentlyUsed() { condition.wait() }
                continue
            }
            entries[key] = Entry(state: .downloading, bytes: bytes, lastUse: clock)
            used += bytes
            metrics.miss()
            counted = true
            condition.unlock()
            let file: ShardFile
            do {
                try download()
                file = try ShardFile(path: path(key))
            } catch {
                condition.withLock {
                    entries[key] = nil
                    used -= bytes
                    condition.broadcast()
                }
                throw error
            }
            condition.lock()
            entries[key]?.state = .present(file, pins: 0)
            index.files[key] = ShardCacheIndex.record(of: path(key), xxh64: xxh64)
            try? index.save(indexPath)
            metrics.cached(used)
            condition.broadcast()
        }
    }

    private func unpin(_ key: String) {
        condition.withLock {
            if let entry = entries[key], case .present(let file, let pins) = entry.state {
                entries[key]?.state = .present(file, pins: pins - 1)
            }
            condition.broadcast()
        }
    }

    /// Deletes the least recently read file nobody is reading; false when there is none.
    /// Called with `condition` locked. A crash before the index is saved leaves the record of
    /// a missing file, which the next start forgets.
    private func evictLeastRecentlyUsed() -> Bool {
        let victim = entries.filter { _, entry in
            if case .present(_, pins: 0) = entry.state { return true }
            return false
        }.min { $0.value.lastUse < $1.value.lastUse }
        guard let key = victim?.key else { return false }
        remove(key)
        try? index.save(indexPath)
        metrics.evicted()
        metrics.cached(used)
        return true
    }

    /// Forgets and deletes the file of `key`, which nobody reads. Called with `condition`
    /// locked; the caller saves the index.
    private func remove(_ key: String) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        index.files[key] = nil
        unlink(path(key))
        used -= entry.bytes
    }
}
