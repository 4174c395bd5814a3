import GRDB
import GRDBSQLite

/// A validated submission waiting in ``Dataset``'s output commit queue.
struct PendingOutputCommit: Sendable {
    /// The batch's outputs, checked against the job's schema and the batch's ids.
    let submission: OutputSubmission
    /// The batch's number in the job's plan.
    let batch: Int
    let job: OutputJob
}

extension Dataset {
    /// The queue every output commit of a dataset goes through: the commits that arrive
    /// while a group is being written are written together, in one transaction with a
    /// savepoint per batch, so a refused batch is rolled back alone and the others commit.
    static func outputCommitQueue(pool: DatabasePool, path: String, known: CommittedBatches) -> GroupCommitQueue<PendingOutputCommit, Int> {
        GroupCommitQueue { commits in
            let written: OutputGroupWrite
            do {
                written = try await writeToCompletion(pool, path: path) { db in try writeOutputGroup(commits, db: db, path: path, known: known) }
            } catch {
                return commits.map { _ in .failure(error) }
            }
            // Believed once committed.
            for listing in written.listings { known.listed(listing.batches, job: listing.job, dataVersion: listing.dataVersion) }
            known.committed(zip(commits, written.outcomes).compactMap { commit, outcome in
                (try? outcome.get()) == nil ? nil : (job: commit.job.id, batch: commit.batch)
            })
            return written.outcomes
        }
    }

    /// Writes each commit in its own savepoint. A commit's error that leaves the transaction
    /// open is that commit's outcome; one that ended the transaction (SQLite rolls it back
    /// on a full disk or an I/O error) is thrown: the whole group failed.
    ///
    /// When another connection committed since a job of the group was last listed, the
    /// job's committed batches are listed again, for ``CommittedBatches`` once the group committed.
    static func writeOutputGroup(_ commits: [PendingOutputCommit], db: Database, path: String, known: CommittedBatches) throws -> OutputGroupWrite {
        let now = Timestamp.now()
        var storedJobs: [Int64: StoredJobIdentity?] = [:]
        var outcomes: [Result<Int, any Error>] = []
        outcomes.reserveCapacity(commits.count)
        for commit in commits {
            do {
                let written = try db.describingFailures(.storage, "cannot write the dataset", source: path) {
                    let stored = try storedJobs[commit.job.id] ?? StoredJobIdentity.fetch(db, id: commit.job.id)
                    storedJobs[commit.job.id] = .some(stored)
                    try checkJob(commit.job, stored: stored, path: path)
                    var written = 0
                    try db.inSavepoint {
                        written = try writeBatch(commit, db: db, committedAt: now, path: path)
                        return .commit
                    }
                    return written
                }
                outcomes.append(.success(written))
            } catch {
                guard db.isInsideTransaction else { throw error }
                outcomes.append(.failure(error))
            }
        }
        let dataVersion = try Int64.fetchOne(db, sql: "PRAGMA data_version") ?? 0
        let listings = try Set(commits.map(\.job.id)).filter { known.needsListing(job: $0, dataVersion: dataVersion) }.map { job in
            OutputGroupWrite.Listing(
                job: job, batches: try Int.fetchAll(db, sql: "SELECT batch FROM mbdata_output_batches WHERE job = ?", arguments: [job]),
                dataVersion: dataVersion)
        }
        return OutputGroupWrite(outcomes: outcomes, listings: listings)
    }

    /// The rows of one batch and its record in `mbdata_output_batches`.
    private static func writeBatch(_ commit: PendingOutputCommit, db: Database, committedAt: String, path: String) throws -> Int {
        let job = commit.job
        let written = try OutputRowInserter(db: db, output: job.output, schema: job.schema).insert(commit.submission)
        do {
            try db.cachedStatement(sql: "INSERT INTO mbdata_output_batches(job, batch, rows, committed_at) VALUES (?, ?, ?, ?)")
                .execute(arguments: [job.id, commit.batch, written, committedAt])
        } catch let error as DatabaseError where error.isUniquenessViolation {
            // Rolled back with the rows above, to the batch's savepoint.
            throw MBDataError(.alreadyDone, "batch \(commit.batch) of inference job \(job.id) is already committed; nothing was written", source: path)
        }
        return written
    }

    /// Refuses a job that is not in this file as it was opened: another dataset's, or one
    /// whose output was dropped (and perhaps created again, with another schema) since — a
    /// job id may be reused once its row is gone.
    private static func checkJob(_ job: OutputJob, stored: StoredJobIdentity?, path: String) throws {
        guard let stored, stored.output == job.output, stored.fingerprint == job.plan.fingerprint, stored.schema == job.canonicalSchema else {
            throw MBDataError(
                .invalidArgument, "inference job \(job.id) of output \(job.output) is not in this dataset (was the output dropped?)", source: path,
                parameter: "job")
        }
    }
}

/// What writing a group did, as it stands before its COMMIT.
struct OutputGroupWrite: Sendable {
    /// A job's committed batches, read in the group's transaction at `dataVersion`.
    struct Listing: Sendable {
        let job: Int64
        let batches: [Int]
        let dataVersion: Int64
    }

    /// One per commit of the group, in order: the rows written, or why the commit was refused.
    let outcomes: [Result<Int, any Error>]
    /// The jobs of the group listed again (another connection committed since their last listing).
    let listings: [Listing]
}

/// What a commit checks of its job's row: the output, the plan's fingerprint and the output's schema.
private struct StoredJobIdentity {
    let output: String
    let fingerprint: String
    let schema: String

    static func fetch(_ db: Database, id: Int64) throws -> StoredJobIdentity? {
        try Row.fetchOne(
            db,
            sql: """
                SELECT j.output, j.fingerprint, o.schema FROM mbdata_output_jobs AS j JOIN mbdata_outputs AS o ON o.name = j.output
                WHERE j.id = ?
                """,
            arguments: [id]
        ).map { StoredJobIdentity(output: $0[0], fingerprint: $0[1], schema: $0[2]) }
    }
}

extension DatabaseError {
    /// A primary-key or unique constraint refused the row.
    fileprivate var isUniquenessViolation: Bool {
        extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY || extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
    }
}
