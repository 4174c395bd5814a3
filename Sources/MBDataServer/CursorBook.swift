import Foundation
import HTTPTypes
import MBData

/// Every cursor the daemon knows, what its open stream has sent, and the leases of share
/// groups. Acks are written to the state database before they are answered.
actor CursorBook {
    enum LeaseOutcome: Sendable {
        case leased(batch: Int, lease: UInt64)
        case complete
        /// Every remaining batch is leased to another consumer; the earliest lease ends then.
        case wait(seconds: Double)
    }

    private struct Lease {
        var cursor: String
        var epoch: Int
        var batch: Int
        var expires: ContinuousClock.Instant
    }

    private let store: CursorStore
    private let metrics: ServeMetrics
    private var cursors: [String: CursorState] = [:]
    /// Batches a cursor's consumers hold, sent or leased but not acked: the lag.
    private var outstanding: [String: Set<Int>] = [:]
    private var leases: [UInt64: Lease] = [:]
    /// Lease ids start at a random point so a restarted daemon never accepts an old one;
    /// below 2^53, so clients that read JSON numbers as doubles keep them exact.
    private var nextLease = UInt64.random(in: 1...(1 << 52))

    init(store: CursorStore, metrics: ServeMetrics) throws {
        self.store = store
        self.metrics = metrics
        for state in try store.loadCursors() { cursors[state.cursor] = state }
    }

    /// The cursor for `fresh`'s key, created (and stored) on first use.
    func cursor(_ fresh: CursorState) async throws -> CursorState {
        if let known = cursors[fresh.cursor] {
            guard known.planFingerprint == fresh.planFingerprint else {
                throw ServeError(
                    .conflict, "cursor_mismatch",
                    "cursor \(fresh.cursor) was made for plan \(known.planFingerprint) (dataset version \(known.datasetVersion)), the request resolves to \(fresh.planFingerprint)")
            }
            return known
        }
        cursors[fresh.cursor] = fresh
        try await store.save(fresh)
        return fresh
    }

    func state(_ id: String) throws -> CursorState {
        guard let state = cursors[id] else { throw ServeError(.notFound, "unknown_cursor", "no cursor \(id)") }
        return state
    }

    /// A stream of the cursor ended: what it sent but was not acked is no longer lag.
    func endStream(_ id: String) {
        outstanding[id] = nil
        metrics.lag(cursor: id, batches: 0)
    }

    func sent(_ id: String, batch: Int) {
        outstanding[id, default: []].insert(batch)
        metrics.lag(cursor: id, batches: outstanding[id]!.count)
    }

    func ack(_ id: String, epoch: Int, batches: [Int]) async throws -> CursorState {
        var state = try state(id)
        guard state.mode != .share else {
            throw ServeError(.badRequest, "invalid_body", "cursor \(id) is a share group: ack its leases ({\"leases\": [...]})")
        }
        if let bad = batches.first(where: { $0 < 0 || $0 >= state.batchesPerEpoch }) {
            throw ServeError(.badRequest, "invalid_body", "batch \(bad) is outside 0..<\(state.batchesPerEpoch) of cursor \(id)")
        }
        outstanding[id]?.subtract(batches)
        metrics.lag(cursor: id, batches: outstanding[id]?.count ?? 0)
        guard state.ack(epoch: epoch, batches: batches) > 0 else { return try self.state(id) }
        cursors[id] = state
        try await store.save(state)
        return state
    }

    func ack(_ id: String, leases acked: [UInt64]) async throws -> CursorState {
        var state = try state(id)
        guard state.mode == .share else {
            throw ServeError(.badRequest, "invalid_body", "cursor \(id) is a \(state.mode.rawValue) cursor: ack its batches ({\"epoch\": E, \"batches\": [...]})")
        }
        let now = ContinuousClock.now
        for lease in acked {
            guard let held = leases[lease], held.cursor == id, held.expires > now else {
                throw ServeError(.conflict, "lease_expired", "lease \(lease) of cursor \(id) expired or is unknown; its batch goes to another consumer")
            }
        }
        for lease in acked {
            let held = leases.removeValue(forKey: lease)!
            _ = state.ack(epoch: held.epoch, batches: [held.batch])
        }
        cursors[id] = state
        try await store.save(state)
        return state
    }

    /// The next batch of `epoch` neither acked nor leased, leased for `seconds`.
    func lease(_ id: String, epoch: Int, seconds: Double) throws -> LeaseOutcome {
        let state = try state(id)
        let now = ContinuousClock.now
        for (lease, held) in leases where held.cursor == id && held.expires <= now {
            leases[lease] = nil
            metrics.leaseExpired(dataset: state.dataset)
        }
        let progress = state.progress(epoch: epoch)
        let held = leases.values.filter { $0.cursor == id && $0.epoch == epoch }
        let leasedBatches = Set(held.map(\.batch))
        guard let batch = (progress.lowWatermark..<state.batchesPerEpoch).first(where: { !progress.isFinished($0) && !leasedBatches.contains($0) })
        else {
            guard let soonest = held.map(\.expires).min() else { return .complete }
            return .wait(seconds: max(0.05, now.duration(to: soonest).seconds))
        }
        let lease = nextLease
        nextLease += 1
        leases[lease] = Lease(cursor: id, epoch: epoch, batch: batch, expires: now + .milliseconds(Int64(seconds * 1000)))
        return .leased(batch: batch, lease: lease)
    }

    /// Gives a batch back when its message could not be produced or sent.
    func release(lease: UInt64) { leases[lease] = nil }

    /// Replaces a cursor with a client's saved state.
    func restore(_ state: CursorState) async throws {
        cursors[state.cursor] = state
        try await store.save(state)
    }

    func reset(_ id: String) async throws {
        guard var state = cursors[id] else { throw ServeError(.notFound, "unknown_cursor", "no cursor \(id)") }
        state.epochs = []
        cursors[id] = state
        for (lease, held) in leases where held.cursor == id { leases[lease] = nil }
        try await store.save(state)
    }
}
