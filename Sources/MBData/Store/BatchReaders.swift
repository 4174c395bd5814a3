import GRDB
import Synchronization

/// Read-only connections to a dataset file for batch reads, kept outside its pool: a batch's
/// read takes one no other read holds (opening one when none is free) and puts it back, so a
/// prefetch worker reads every batch on a connection it keeps, and at most one exists per
/// read running at once — batch reads run on the blocking executor, so at most one per
/// executor thread, whatever the number of loaders, plans or sources over the dataset.
///
/// Taking one costs a lock, where the pool's checkout (its semaphore and lock, its queue, and
/// GRDB's schema check, a `PRAGMA schema_version` each time) cost ≈ 4% of a mixture's CPU,
/// paid once per source per batch (issue 14's profile).
///
/// Ids that fit in one statement are read outside a transaction — a statement is its own
/// snapshot of what is committed, and this spares the statements GRDB runs around each
/// isolated read (five) — and more in one transaction; no transaction outlives a read, so a kept
/// connection neither sees an older snapshot than a fresh one would nor holds back a
/// checkpoint. A plan pins ids, so its samples read the same after another ingest, and a
/// pinned sample that is gone is refused as before.
final class BatchReaders: Sendable {
    private let path: String
    /// The name SQLite opens the file by (``ReadOnlyAccess/filename(of:readOnly:)``).
    private let filename: String
    private let free = Mutex<[DatabaseQueue]>([])
    private let opened = Atomic<Int>(0)

    /// Connections to the dataset file at `path`, opened by SQLite as `filename`; none is
    /// opened yet.
    init(path: String, filename: String) {
        self.path = path
        self.filename = filename
    }

    /// Connections opened so far; each stays open while the dataset is.
    var openedCount: Int { opened.load(ordering: .relaxed) }

    /// Runs `body`, which reads `idCount` ids with ``SampleReader/forEachRow(_:ids:fieldCount:stepping:)``,
    /// on a kept connection that no other read holds meanwhile.
    func read<T>(idCount: Int, _ body: (Database) throws -> T) throws -> T {
        let connection = try free.withLock { $0.popLast() } ?? open()
        defer { free.withLock { $0.append(connection) } }
        return idCount <= SampleReader.idsPerQuery ? try connection.inDatabase(body) : try connection.read(body)
    }

    /// Frees the page caches of the connections no read holds now (one in use keeps its own
    /// until a later call). Blocks: call it off the cooperative pool.
    func releaseMemory() {
        for connection in free.withLock({ $0 }) { connection.releaseMemory() }
    }

    /// The page cache of a batch reader of a file of `pageCount` pages, in KiB: the table's
    /// interior pages, which every lookup walks (about 12 bytes of them per page of the file),
    /// twice over, and 128 KiB more; at least 256 KiB, at most the pool's. Shuffled reads land
    /// on leaves at random, so a larger cache only recycles colder buffers: SQLite alone read a
    /// batch's rows from three files 10–19% slower than from one with 4 MiB a connection, and
    /// as fast with 1 MiB; the live loader's epoch took 12–17% less CPU in one sitting, the
    /// same in another (Benchmarks/results/packing.md).
    static func cacheKiB(pageCount: Int) -> Int {
        min(max((pageCount * 24) / 1024 + 128, 256), Dataset.poolCacheKiB)
    }

    private func open() throws -> DatabaseQueue {
        let configuration = Dataset.connectionConfiguration(readOnly: true)
        do {
            let connection = try DatabaseQueue(path: filename, configuration: configuration)
            try connection.inDatabase { db in
                let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                try db.execute(sql: "PRAGMA cache_size = -\(Self.cacheKiB(pageCount: pages))")
            }
            opened.add(1, ordering: .relaxed)
            return connection
        } catch {
            throw MBDataError.wrapping(error, .storage, "cannot open a reader of the dataset", source: path)
        }
    }
}
