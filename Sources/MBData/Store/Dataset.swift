import Foundation
import GRDB

/// One dataset: a single SQLite file (WAL mode) holding the samples, the schema, the
/// dataset version and the ingest log.
///
/// ```swift
/// let dataset = try Dataset(path: "digits.mbdb", create: true)
/// let summaries = try await dataset.ingest(SourceSpec(paths: ["digits.jsonl"]), schema: schema)
/// print(try await dataset.info().sampleCount)
/// ```
///
/// Thread-safety: one `Dataset` may be shared by any number of tasks; reads run
/// concurrently on a pool of reader connections, writes (ingest) one at a time, all off the
/// cooperative thread pool. Other processes may read the file while one ingests (WAL).
public final class Dataset: Sendable {
    /// The path of the dataset file, as given to ``init(path:create:)``.
    public let path: String
    let pool: DatabasePool
    /// The connections batch reads keep, outside the pool (``BatchReaders``).
    let batchReaders: BatchReaders
    /// Output commits, written in groups: one transaction for the commits that arrive together.
    let outputCommits: GroupCommitQueue<PendingOutputCommit, Int>
    /// The inference jobs' batches known to be committed (``CommittedBatches``).
    let committedBatches: CommittedBatches
    /// Checkpoints the WAL beside the writer, not inside its commits (``WALCheckpointer``).
    let walCheckpointer: WALCheckpointer
    /// Whether this process cannot write the file: it lies on read-only storage (a read-only
    /// mount: an NFS export, a squashfs image, a container volume), or the file or its folder
    /// is not writable to this user (a shared dataset folder). It is then read as it is —
    /// opened immutable, so SQLite takes no locks and makes no `-wal` or `-shm` file beside
    /// it — and every write is refused. It must not change while it is read.
    public let isReadOnly: Bool

    /// Opens a dataset file; with `create`, a missing file becomes a new, empty dataset
    /// (it gets its schema from the first ingest). An older dataset format is upgraded in place.
    ///
    /// A file this process cannot write is opened for reading only (``isReadOnly``).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidDataset` when the file is
    ///   missing (without `create`), not SQLite, an SQLite file of something else, or of a
    ///   newer format than this build reads; where it cannot be written, also of an older format
    ///   (which needs an upgrade) or with a write-ahead log beside it that was never folded
    ///   into the file (which it cannot read without writing); `MBDataError.Code.storage`
    ///   for `create` in a folder it cannot write.
    public convenience init(path: String, create: Bool = false) throws {
        try self.init(path: path, create: create, checkpoints: .standard)
    }

    /// ``init(path:create:)`` with the WAL checkpoint thresholds given (tests use small ones).
    init(path: String, create: Bool, checkpoints: WALCheckpointer.Thresholds) throws {
        self.path = path
        walCheckpointer = WALCheckpointer(path: path, thresholds: checkpoints)
        let exists = FileManager.default.fileExists(atPath: path)
        guard exists || create else {
            throw MBDataError(.invalidDataset, "no such dataset file", source: path)
        }
        if !exists, ReadOnlyAccess.forbidsCreating(path) {
            throw MBDataError(.storage, "cannot create a dataset here: the folder is on read-only storage or not writable to this user", source: path)
        }
        let readOnly = exists && ReadOnlyAccess.forbidsWrites(path)
        isReadOnly = readOnly
        if readOnly { try ReadOnlyAccess.refuseUnfoldedLog(of: path) }
        var configuration = Self.connectionConfiguration(readOnly: readOnly)
        // One reader connection per thread of the blocking executor, as every batch read runs
        // there, plus two for the reads that run elsewhere (plans, cursors, inspect), so that a
        // batch job never waits for a connection while it holds an executor thread.
        configuration.maximumReaderCount = BlockingExecutor.threadCount + 2
        let filename = ReadOnlyAccess.filename(of: path, readOnly: readOnly)
        batchReaders = BatchReaders(path: path, filename: filename)
        do {
            pool = try DatabasePool(path: filename, configuration: configuration)
        } catch {
            throw MBDataError.wrapping(error, .invalidDataset, "cannot open as SQLite", source: path)
        }
        let known = CommittedBatches()
        committedBatches = known
        outputCommits = Self.outputCommitQueue(pool: pool, path: path, known: known)
        do {
            try pool.read { db in try Self.checkTables(db, path: path) }
            if readOnly {
                guard try pool.read({ db in try DatasetMigrations.migrator.hasCompletedMigrations(db) }) else {
                    throw MBDataError(
                        .invalidDataset, "an older dataset format that this process cannot write: open it once where it can be written, to upgrade it",
                        source: path)
                }
            } else {
                try DatasetMigrations.migrator.migrate(pool)
                pool.writeWithoutTransaction { db in walCheckpointer.attach(to: db) }
            }
        } catch {
            throw MBDataError.wrapping(error, .invalidDataset, "not a readable dataset", source: path)
        }
    }

    /// The page cache of each of the pool's connections, in KiB.
    static let poolCacheKiB = 4096

    /// What every connection to a dataset file is opened with: the pool's and the batch
    /// readers' (``BatchReaders``); read-only ones where this process cannot write the file.
    static func connectionConfiguration(readOnly: Bool) -> Configuration {
        var configuration = Configuration()
        configuration.label = "mbdata"
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(30)
        configuration.prepareDatabase { db in
            // 16 KiB pages (new files only): five 3 KiB sample rows share a page (97% used;
            // a 4 KiB page would waste a quarter), while a shuffled batch read copies 16 KiB
            // per row, not the 64 KiB of the largest pages (see Benchmarks/README.md).
            try db.execute(sql: "PRAGMA page_size = 16384")
            // The pool's connections keep 4 MiB of page cache; batch readers size theirs to
            // the file (``BatchReaders/cacheKiB(pageCount:)``).
            try db.execute(sql: "PRAGMA cache_size = -\(poolCacheKiB)")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            // Until its WAL hook replaces it (``WALCheckpointer``), the writer checkpoints as
            // SQLite does, at the checkpointer's blocking bound.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.Thresholds.standard.blockingFrames)")
        }
        return configuration
    }

    /// Refuses a file that is not an mbdata dataset or is of a newer format; the migrator
    /// then creates the tables of a new file or upgrades an older one.
    private static func checkTables(_ db: Database, path: String) throws {
        let tables = try String.fetchAll(
            db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%'")
        if !tables.isEmpty && !tables.contains("mbdata_meta") {
            throw MBDataError(
                .invalidDataset, "an SQLite file but not an mbdata dataset (it has tables \(tables.prefix(5).joined(separator: ", ")) and no mbdata_meta)",
                source: path)
        }
        if tables.contains("mbdata_meta"),
            let stored = try String.fetchOne(db, sql: "SELECT value FROM mbdata_meta WHERE key = 'format_version'"),
            let version = Int(stored), version > DatasetMigrations.formatVersion
        {
            throw MBDataError(
                .invalidDataset, "dataset format \(version) is newer than this mbdata (\(DatasetMigrations.formatVersion)); upgrade mbdata",
                source: path)
        }
    }

    /// Runs `body` in a read transaction on a reader connection (off the cooperative pool).
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read { db in try db.describingFailures(.storage, "cannot read the dataset", source: path) { try body(db) } }
        } catch {
            throw MBDataError.wrapping(error, .storage, "cannot read the dataset", source: path)
        }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction on the writer connection (off the
    /// cooperative pool): a throw rolls everything back, a return commits.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let path = self.path
        do {
            return try await pool.writeWithoutTransaction { db in try Self.immediateTransaction(db, path: path, body) }
        } catch {
            throw MBDataError.wrapping(error, .storage, "cannot write the dataset", source: path)
        }
    }

    /// ``write(_:)`` run to its end even when the calling task is cancelled: for a write
    /// whose outcome other tasks wait on (a group commit).
    static func writeToCompletion<T: Sendable>(
        _ pool: DatabasePool, path: String, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
            pool.asyncWriteWithoutTransaction { db in
                continuation.resume(returning: Result { try immediateTransaction(db, path: path, body) })
            }
        }
        do {
            return try result.get()
        } catch {
            throw MBDataError.wrapping(error, .storage, "cannot write the dataset", source: path)
        }
    }

    private static func immediateTransaction<T>(_ db: Database, path: String, _ body: (Database) throws -> T) throws -> T {
        if db.configuration.readonly { throw readOnlyError(path) }
        return try db.describingFailures(.storage, "cannot write the dataset", source: path) {
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// Refuses a write to a dataset this process cannot write before it starts.
    func refuseWritesWhenReadOnly() throws {
        if isReadOnly { throw Self.readOnlyError(path) }
    }

    private static func readOnlyError(_ path: String) -> MBDataError {
        MBDataError(.storage, "the dataset lies on read-only storage or is not writable to this user: it can be read, not written", source: path)
    }

    /// The schema the dataset was created with; nil before the first ingest.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read.
    public func schema() async throws -> Schema? {
        try await read { db in try Self.storedSchema(db) }
    }

    static func storedSchema(_ db: Database) throws -> Schema? {
        guard let text = try String.fetchOne(db, sql: "SELECT value FROM mbdata_meta WHERE key = 'schema'") else { return nil }
        return try Schema(json: Data(text.utf8))
    }

    static func meta(_ db: Database, _ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM mbdata_meta WHERE key = ?", arguments: [key])
    }

    static func setMeta(_ db: Database, _ key: String, _ value: String) throws {
        try db.execute(
            sql: "INSERT INTO mbdata_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [key, value])
    }

    /// Deletes a dataset file with its WAL, shared-memory and journal files.
    static func removeFiles(at path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// The number that grows with every committed ingest chunk (0 for a new dataset); a
    /// plan pins one (``plan(_:version:)``), so samples ingested later are not in its epochs.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read.
    public func version() async throws -> Int {
        try await read { db in Int(try Self.meta(db, "dataset_version") ?? "0") ?? 0 }
    }
}
