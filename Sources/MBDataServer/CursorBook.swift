import Foundation
import HTTPTypes
import MBData
import MBDataWire

/// Every cursor the daemon knows, what its open stream has sent, and the leases of share
/// groups.
///
/// State is written before it is believed (DESIGN decision 11): every change of a cursor —
/// creation, acks, a restore, a reset — is computed on a copy, written to the state
/// database, and applied in memory only after the write committed. A failed write leaves
/// memory as it was, so the client's retry writes again; a 2xx means "on disk". Changes run
/// one at a time (`serialized`), so two acks of one cursor never overwrite each other's
/// write while the actor waits on the database.
actor CursorBook {
    typealias LeaseOutcome = LeaseTable.Outcome

    private let store: CursorStore
    private let metrics: ServeMetrics
    private let clock: ServeClock
    private var cursors: [String: CursorState] = [:]
    /// Batches a cursor's consumers hold, sent or leased but not acked: the lag.
    private var outstanding: [String: Set<Int>] = [:]
    private var leases = LeaseTable()
    private var writing = false
    private var waitingWriters: [CheckedContinuation<Void, Never>] = []

    init(store: CursorStore, metrics: ServeMetrics, clock: ServeClock = .continuous) throws {
        self.store = store
        self.metrics = metrics
        self.clock = clock
        for state in try store.loadCursors() { cursors[state.cursor] = state }
    }

    /// Runs one state change at a time: the next waits until this one's write is answered.
    private func serialized<T: Sendable>(_ change: () async throws -> T) async throws -> T {
        while writing { await withCheckedContinuation { waitingWriters.append($0) } }
        writing = true
        defer {
            writing = false
            if !waitingWriters.isEmpty { waitingWriters.removeFirst().resume() }
        }
        return try await change()
    }

    /// Refuses `fresh` when its id names a cursor of another plan; changes nothing.
    func check(_ fresh: CursorState) throws {
        guard let known = cursors[fresh.cursor] else { return }
        guard known.planFingerprint == fresh.planFingerprint, known.datasetVersion == fresh.datasetVersion else {
            throw ServeError(
                .conflict, "cursor_mismatch",
                "cursor \(fresh.cursor) was made for plan \(known.planFingerprint) (dataset version \(known.datasetVersion)), the request resolves to \(fresh.planFingerprint) (dataset version \(fresh.datasetVersion))"
            )
        }
    }

    /// The cursor for `fresh`'s key, created (written, then kept) on first use.
    func cursor(_ fresh: CursorState) async throws -> CursorState {
        try await serialized {
            try check(fresh)
            if let known = cursors[fresh.cursor] { return known }
            try await store.save(fresh)
            cursors[fresh.cursor] = fresh
            return fresh
        }
    }

    func state(_ id: String) throws -> CursorState {
        guard let state = cursors[id] else { throw ServeError.unknownCursor(id) }
        return state
    }

    /// A stream of the cursor ended: what it sent but was not acked is no longer lag.
    func endStream(_ id: String) {
        outstanding[id] = nil
        metrics.lag(cursor: id, batches: 0)
    }

    func sent(_ id: String, batch: Int) {
        var held = outstanding[id, default: []]
        held.insert(batch)
        outstanding[id] = held
        metrics.lag(cursor: id, batches: held.count)
    }

    /// Acks batches of a partition or replicate cursor; acking a batch twice is harmless.
    func ack(_ id: String, epoch: Int, batches: [Int]) async throws -> CursorState {
        try await serialized {
            var state = try state(id)
            guard state.mode != .share else {
                throw ServeError(.badRequest, "invalid_body", "cursor \(id) is a share group: ack its leases ({\"leases\": [...]})")
            }
            try state.checkAck(epoch: epoch, batches: batches)
            if state.ack(epoch: epoch, batches: batches) > 0 {
                try await store.save(state)
                cursors[id] = state
            }
            if var held = outstanding[id] {
                held.subtract(batches)
                outstanding[id] = held
                metrics.lag(cursor: id, batches: held.count)
            }
            return state
        }
    }

    /// Acks leases of a share cursor: all of them, or none when one expired or is unknown.
    /// A lease named twice is acked once.
    func ack(_ id: String, leases acked: [UInt64]) async throws -> CursorState {
        try await serialized {
            var state = try state(id)
            guard state.mode == .share else {
                throw ServeError(
                    .badRequest, "invalid_body", "cursor \(id) is a \(state.mode.rawValue) cursor: ack its batches ({\"epoch\": E, \"batches\": [...]})")
            }
            let now = clock.now()
            var held: [UInt64: LeaseTable.Lease] = [:]
            for lease in acked where held[lease] == nil {
                guard let found = leases.held(lease, by: id, now: now) else {
                    throw ServeError(.conflict, "lease_expired", "lease \(lease) of cursor \(id) expired or is unknown; its batch goes to another consumer")
                }
                held[lease] = found
            }
            for lease in held.values { _ = state.ack(epoch: lease.epoch, batches: [lease.batch]) }
            try await store.save(state)
            cursors[id] = state
            for lease in held.keys { leases.remove(lease) }
            return state
        }
    }

    /// The next batch of `epoch` neither acked nor leased, leased for `seconds`. Leases live
    /// in memory only: a restarted daemon offers their batches again.
    func lease(_ id: String, epoch: Int, seconds: Double) throws -> LeaseOutcome {
        let state = try state(id)
        let now = clock.now()
        metrics.leaseExpired(dataset: state.dataset, count: leases.expire(cursor: id, now: now).count)
        return leases.lease(cursor: id, epoch: epoch, seconds: seconds, now: now) { state.firstUnacked(epoch: epoch, skipping: $0) }
    }

    /// Gives a batch back when its message could not be produced or sent.
    func release(lease: UInt64) { leases.remove(lease) }

    /// Replaces a cursor with a client's saved state (already checked against its plan).
    func restore(_ state: CursorState) async throws {
        try await serialized {
            try await store.save(state)
            cursors[state.cursor] = state
            leases.removeAll(cursor: state.cursor)
        }
    }

    /// Forgets every ack of a cursor.
    func reset(_ id: String) async throws {
        try await serialized {
            var state = try state(id)
            state.epochs = []
            try await store.save(state)
            cursors[id] = state
            leases.removeAll(cursor: id)
        }
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
