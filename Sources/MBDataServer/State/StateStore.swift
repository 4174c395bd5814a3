import MBDataWire

/// Where a daemon keeps what must outlive it, and what several daemons serving one cluster
/// agree on (DESIGN decision 15): cursors, the dataset version each group's plan is pinned
/// to, share-group leases and the claim each open stream holds on its cursor.
///
/// Every method is one transaction of the store; a method that returns has committed, so a
/// daemon answers 2xx only after it returns (DESIGN decision 11). A failed write changes
/// nothing and throws an ``MBData/MBDataError`` of code `.storage` that
/// ``isUnavailable(_:)`` recognises when a retry may succeed (the daemon answers it
/// 503 `state_unavailable`). Refusals a client caused are ``ServeError``s.
///
/// Two implementations: ``SQLiteStateStore``, the embedded default for one daemon, and
/// `PostgresStateStore`, shared by every daemon of a cluster, whose leases and stream
/// claims expire on the database's clock.
package protocol StateStore: Sendable {
    /// What the store is, for logs and errors: a file path, or a URL without its password.
    var location: String { get }

    /// The cursor `id` as stored, or nil when there is none.
    func cursor(_ id: String) async throws -> CursorState?

    /// Stores `fresh` unless a cursor with its id exists; returns the stored cursor (`fresh`
    /// or the one found, unchanged).
    func createCursor(_ fresh: CursorState) async throws -> CursorState

    /// Reads cursor `id`, lets `change` modify it and writes it back when `change` returns
    /// true, with the cursor locked against every other writer of the store in between;
    /// returns the cursor as stored afterwards. Throws ``ServeError/unknownCursor(_:)`` when
    /// there is none; an error thrown by `change` writes nothing.
    func updateCursor(_ id: String, _ change: @escaping @Sendable (inout CursorState) throws -> Bool) async throws -> CursorState

    /// Overwrites the cursor with `state` (a restore or a reset) and ends every lease of it.
    func replaceCursor(_ state: CursorState) async throws

    /// The dataset version the plan of `key` is pinned to, or nil.
    func pinnedVersion(key: String) async throws -> Int?

    /// Pins `key` to `version` unless it is pinned already; returns the version it is
    /// pinned to.
    func pin(key: String, version: Int) async throws -> Int

    /// Leases for `seconds` the batch of `epoch` that `firstFree` picks given the stored
    /// cursor and the batches of that epoch other unexpired leases hold. Expired leases of
    /// the cursor end first; their count comes back for the metrics.
    func lease(
        cursor: String, epoch: Int, seconds: Double,
        firstFree: @escaping @Sendable (CursorState, Set<Int>) -> Int?
    ) async throws -> (outcome: LeaseOutcome, expired: Int)

    /// Acks the batches `leases` hold: all of them and ends the leases, or — when one is
    /// unknown, expired or another cursor's — none, throwing `409 lease_expired`. A lease
    /// named twice is acked once. Returns the cursor as stored afterwards.
    func ackLeases(cursor: String, leases: [UInt64]) async throws -> CursorState

    /// Ends a lease without acking its batch: the batch goes back to the group.
    func releaseLease(_ lease: UInt64) async throws

    /// Claims the one open stream `cursor` may have, for `holder` (a daemon's id), for
    /// `seconds`; false when another holder's claim has not expired. A holder claiming again
    /// renews its claim.
    func claimStream(cursor: String, holder: String, seconds: Double) async throws -> Bool

    /// Ends `holder`'s claim on `cursor`'s stream; nothing when it holds none.
    func releaseStream(cursor: String, holder: String) async throws

    /// Whether `error` is a write of this store that failed and changed nothing, and a
    /// retry may succeed: a full or read-only disk, a lost connection, a busy database.
    func isUnavailable(_ error: any Error) -> Bool
}

/// What a lease request gets (schemas/serve-protocol.md §5).
package enum LeaseOutcome: Sendable, Equatable {
    /// `batch` is leased to the caller under the id `lease`.
    case leased(batch: Int, lease: UInt64)
    /// Every batch of the epoch is acked.
    case complete
    /// Every remaining batch is leased to another consumer; the earliest lease ends in
    /// `seconds`.
    case wait(seconds: Double)
}
