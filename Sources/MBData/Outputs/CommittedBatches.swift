import Synchronization

/// The batches of each inference job known to be committed, kept in memory by a ``Dataset``
/// so that an ``InferenceJob`` skips a batch another job committed without a read per batch.
///
/// A group commit adds its own batches, and lists a job's batches again from the file when
/// another connection (another process) committed since the job was last listed (SQLite's
/// `PRAGMA data_version`). What it holds is a subset of what the file holds: a batch it does
/// not know of may still be committed, which the commit then finds (`.alreadyDone`).
final class CommittedBatches: Sendable {
    private let state = Mutex(State())

    private struct State {
        var batches: [Int64: Set<Int>] = [:]
        /// The writer connection's `data_version` when each job was last listed.
        var listedAt: [Int64: Int64] = [:]
    }

    /// Whether batch `batch` of job `job` is known to be committed.
    func contains(job: Int64, batch: Int) -> Bool {
        state.withLock { $0.batches[job]?.contains(batch) ?? false }
    }

    /// Whether job `job` must be listed again at `dataVersion` (never listed, or the file
    /// changed under another connection's hand since).
    func needsListing(job: Int64, dataVersion: Int64) -> Bool {
        state.withLock { $0.listedAt[job] != dataVersion }
    }

    /// Records `batches`, read from the file at `dataVersion`, as every committed batch of `job`.
    func listed(_ batches: [Int], job: Int64, dataVersion: Int64) {
        state.withLock { state in
            state.batches[job] = Set(batches)
            state.listedAt[job] = dataVersion
        }
    }

    /// Forgets every job: their ids may be reused once their rows are gone (an output dropped).
    func forgetAll() {
        state.withLock { $0 = State() }
    }

    /// Records batches this process committed.
    func committed(_ batches: [(job: Int64, batch: Int)]) {
        state.withLock { state in
            for (job, batch) in batches { state.batches[job, default: []].insert(batch) }
        }
    }
}
