import Foundation
import HTTPTypes
import MBData
import MBDataWire

/// What one daemon keeps of the cursors beside the state store: what each open stream has
/// sent and not seen acked (the lag), and the metrics. Every change of a cursor — creation,
/// acks, leases, a restore, a reset — is one transaction of the ``StateStore``, answered
/// only once it committed (DESIGN decision 11); the book caches no cursor, since another
/// daemon sharing the store may have acked since.
actor CursorBook {
    /// Where cursors, leases and stream claims live.
    nonisolated let store: any StateStore
    private let metrics: ServeMetrics
    /// Batches a cursor's consumers hold, sent or leased but not acked: the lag.
    private var outstanding: [String: Set<Int>] = [:]

    init(store: any StateStore, metrics: ServeMetrics) {
        self.store = store
        self.metrics = metrics
    }

    /// Refuses `fresh` when its id names a cursor of another plan; changes nothing.
    func check(_ fresh: CursorState) async throws {
        guard let known = try await store.cursor(fresh.cursor) else { return }
        try Self.check(fresh, against: known)
    }

    private static func check(_ fresh: CursorState, against known: CursorState) throws {
        guard known.planFingerprint == fresh.planFingerprint, known.datasetVersion == fresh.datasetVersion else {
            if let made = known.mixture, let asked = fresh.mixture, let difference = made.difference(from: asked) {
                throw ServeError(.conflict, "cursor_mismatch", "cursor \(fresh.cursor) was made for another mixture: it \(difference)")
            }
            throw ServeError(
                .conflict, "cursor_mismatch",
                "cursor \(fresh.cursor) was made for plan \(known.planFingerprint) (dataset version \(known.datasetVersion)), the request resolves to \(fresh.planFingerprint) (dataset version \(fresh.datasetVersion))"
            )
        }
    }

    /// The cursor for `fresh`'s key, created on first use.
    func cursor(_ fresh: CursorState) async throws -> CursorState {
        let stored = try await store.createCursor(fresh)
        try Self.check(fresh, against: stored)
        return stored
    }

    /// The cursor as stored; `404 unknown_cursor` when there is none.
    func state(_ id: String) async throws -> CursorState {
        guard let state = try await store.cursor(id) else { throw ServeError.unknownCursor(id) }
        return state
    }

    /// A stream of the cursor ended: what it sent but was not acked is no longer lag.
    func endStream(_ id: String) {
        outstanding[id] = nil
        metrics.lag(cursor: id, batches: 0)
    }

    func sent(_ id: String, batches: [Int]) {
        outstanding[id, default: []].formUnion(batches)
        metrics.lag(cursor: id, batches: outstanding[id]?.count ?? 0)
    }

    /// Acks batches of a partition or replicate cursor; acking a batch twice is harmless.
    /// `count` is the epoch's batches when they are not the cursor's `batchesPerEpoch` (a
    /// packed epoch).
    func ack(_ id: String, epoch: Int, batches: [Int], count: Int? = nil) async throws -> CursorState {
        let state = try await store.updateCursor(id) { state in
            guard state.mode != .share else {
                throw ServeError(.badRequest, "invalid_body", "cursor \(id) is a share group: ack its leases ({\"leases\": [...]})")
            }
            try state.checkAck(epoch: epoch, batches: batches, count: count)
            return state.ack(epoch: epoch, batches: batches) > 0
        }
        if outstanding[id] != nil {
            outstanding[id]?.subtract(batches)
            metrics.lag(cursor: id, batches: outstanding[id]?.count ?? 0)
        }
        return state
    }

    /// Acks leases of a share cursor: all of them, or none when one expired or is unknown.
    /// A lease named twice is acked once.
    func ack(_ id: String, leases acked: [UInt64]) async throws -> CursorState {
        let state = try await self.state(id)
        guard state.mode == .share else {
            throw ServeError(
                .badRequest, "invalid_body", "cursor \(id) is a \(state.mode.rawValue) cursor: ack its batches ({\"epoch\": E, \"batches\": [...]})")
        }
        return try await store.ackLeases(cursor: id, leases: acked)
    }

    /// The next batch of `epoch` (of `count` batches: default the cursor's `batchesPerEpoch`)
    /// of `cursor` neither acked nor leased, leased for `seconds`.
    func lease(_ cursor: CursorState, epoch: Int, count: Int? = nil, seconds: Double) async throws -> LeaseOutcome {
        let (outcome, expired) = try await store.lease(cursor: cursor.cursor, epoch: epoch, seconds: seconds) { state, leased in
            state.firstUnacked(epoch: epoch, skipping: leased, count: count)
        }
        metrics.leaseExpired(dataset: cursor.dataset, count: expired)
        return outcome
    }

    /// Gives a batch back when its message could not be produced or sent. A release the
    /// store fails to write leaves the lease to expire, which gives the batch back too.
    func release(lease: UInt64) async {
        try? await store.releaseLease(lease)
    }

    /// Replaces a cursor with a client's saved state (already checked against its plan).
    func restore(_ state: CursorState) async throws {
        try await store.replaceCursor(state)
    }

    /// Forgets every ack of a cursor.
    func reset(_ id: String) async throws {
        var state = try await self.state(id)
        state.epochs = []
        try await store.replaceCursor(state)
    }
}

/// The time leases expire by: the continuous clock, or a manual one in tests.
package struct ServeClock: Sendable {
    /// The current instant.
    package let now: @Sendable () -> ContinuousClock.Instant

    /// A clock reading `now`.
    package init(now: @escaping @Sendable () -> ContinuousClock.Instant) { self.now = now }

    /// The continuous clock: what a daemon uses.
    package static let continuous = ServeClock { ContinuousClock.now }
}
