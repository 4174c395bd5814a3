import Foundation
import GRDB
import GRDBSQLite
import MBDataTraining
import Synchronization

/// Checkpoints a dataset's WAL on the blocking executor, beside the writer, instead of
/// inside the commit that crosses SQLite's auto-checkpoint threshold.
///
/// In WAL mode every committed page is written twice: into the WAL, then by a checkpoint
/// into the database file. SQLite's auto-checkpoint runs that second copy (and its two
/// `fsync`s) in the committing thread, so a writer of large rows — 2 KiB embeddings, an
/// ingest — spends about a third of its time checkpointing while the other cores idle
/// (Benchmarks/README.md, "Inference write-back"). Here the writer connection's WAL hook
/// only asks for a checkpoint; a connection of the checkpointer's own runs it, `PASSIVE`
/// (it never waits for the writer or a reader, and never blocks them). The WAL stays
/// bounded: a commit that finds it at ``Thresholds/blockingFrames`` or more checkpoints in
/// its own thread as SQLite would, which also happens when this checkpointer is gone.
///
/// A checkpoint is SQLite's own: which connection runs it changes nothing of what a crash
/// leaves (the WAL's committed frames are replayed, a half-copied checkpoint is redone).
final class WALCheckpointer: Sendable {
    /// When a checkpoint is asked for, in WAL frames (pages).
    struct Thresholds: Sendable {
        /// A commit that leaves at least this many frames in the WAL asks for a checkpoint
        /// in the background.
        var backgroundFrames: Int32
        /// A commit that leaves at least this many checkpoints itself before it returns.
        var blockingFrames: Int32

        /// A checkpoint every 16 MiB of 16 KiB pages, and a commit waits at 64 MiB (where
        /// SQLite's auto-checkpoint ran, as the dataset set it before). A larger bound was
        /// slower: at 256 MiB the 2 KiB-embedding job took 1.65–1.76 s against 1.24–1.30 s.
        static let standard = Thresholds(backgroundFrames: 1024, blockingFrames: 4096)
    }

    private struct State {
        var running = false
        var askedAgain = false
    }

    let thresholds: Thresholds
    private let path: String
    private let state = Mutex(State())
    private let completed = Atomic<Int>(0)
    private let registration: Int

    init(path: String, thresholds: Thresholds = .standard) {
        self.path = path
        self.thresholds = thresholds
        registration = Self.nextRegistration.add(1, ordering: .relaxed).oldValue
        Self.registry.withLock { $0[registration] = Weak(self) }
    }

    deinit {
        _ = Self.registry.withLock { $0.removeValue(forKey: registration) }
    }

    /// Background checkpoints that succeeded so far (each one `PASSIVE`, as far as readers allow).
    var backgroundCheckpoints: Int { completed.load(ordering: .relaxed) }

    /// Makes the commits of `db` (a dataset's one writer connection) ask this checkpointer
    /// for their checkpoints, replacing SQLite's auto-checkpoint on that connection.
    func attach(to db: Database) {
        sqlite3_wal_hook(db.sqliteConnection, walCommitHook, UnsafeMutableRawPointer(bitPattern: registration))
    }

    /// Asks for a checkpoint; one runs at a time, and a request while one runs makes it run again.
    fileprivate func request() {
        let start = state.withLock { state in
            if state.running {
                state.askedAgain = true
                return false
            }
            state.running = true
            return true
        }
        if start {
            BlockingExecutor.submit { [self] in run() }
        }
    }

    /// Checkpoints until no request is left, on a connection opened for the run and closed
    /// after it: an idle connection would keep an ingest from switching the file to its
    /// rollback journal (``BulkLoadMode``).
    private func run() {
        // Opened without SQLITE_OPEN_CREATE: a dataset file removed meanwhile is not made
        // again, empty, by its checkpointer.
        var connection: OpaquePointer?
        let opened = sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK
        defer { sqlite3_close_v2(connection) }
        while true {
            // A failure (another process checkpointing, a full disk) leaves the frames in the
            // WAL, where the next checkpoint or a blocking commit copies them; nothing
            // committed is at risk.
            if opened && sqlite3_wal_checkpoint_v2(connection, "main", SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_OK {
                completed.add(1, ordering: .relaxed)
            }
            let again = state.withLock { state in
                state.running = state.askedAgain
                state.askedAgain = false
                return state.running
            }
            if !again { return }
        }
    }

    // The WAL hook's context is a number, not a pointer to the checkpointer: the writer
    // connection may outlive it (work in flight holds the pool), and a number that is no
    // longer registered falls back to SQLite's own behaviour.
    private final class Weak: Sendable {
        weak let checkpointer: WALCheckpointer?
        init(_ checkpointer: WALCheckpointer?) { self.checkpointer = checkpointer }
    }

    private static let registry = Mutex<[Int: Weak]>([:])
    private static let nextRegistration = Atomic<Int>(1)

    fileprivate static func checkpointer(registered registration: Int) -> WALCheckpointer? {
        registry.withLock { $0[registration]?.checkpointer }
    }
}

/// Called by SQLite after each commit of a writer connection with the frames now in its WAL.
private func walCommitHook(
    _ context: UnsafeMutableRawPointer?, _ db: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ frames: Int32
) -> Int32 {
    let checkpointer = WALCheckpointer.checkpointer(registered: Int(bitPattern: context))
    let thresholds = checkpointer?.thresholds ?? .standard
    if let checkpointer, frames < thresholds.blockingFrames {
        if frames >= thresholds.backgroundFrames { checkpointer.request() }
    } else if frames >= thresholds.backgroundFrames {
        checkpointWaitingForAnother(db, name)
    }
    return SQLITE_OK
}

/// A `PASSIVE` checkpoint in the committing thread, waiting up to 10 s for one that another
/// connection runs: SQLite answers `SQLITE_BUSY` at once, without its busy handler, while
/// another checkpoint holds the lock, and a checkpoint that stopped short of the WAL's end
/// lets the WAL grow past the bound.
private func checkpointWaitingForAnother(_ db: OpaquePointer?, _ name: UnsafePointer<CChar>?) {
    for _ in 0..<10_000 {
        guard sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_BUSY else { return }
        usleep(1000)
    }
}
