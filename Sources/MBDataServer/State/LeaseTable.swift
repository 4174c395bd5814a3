/// Batches leased to consumers, by lease id, each until its expiry on the daemon's clock:
/// the share-group leases of ``SQLiteStateStore`` and those of inference jobs
/// (``DatasetOutputStore``). Leases live in memory only, so a restarted daemon offers their
/// batches again.
struct LeaseTable {
    struct Lease: Sendable {
        var cursor: String
        var epoch: Int
        var batch: Int
        var expires: ContinuousClock.Instant
    }

    private var leases: [UInt64: Lease] = [:]
    /// Lease ids start at a random point so a restarted daemon never accepts an old one;
    /// below 2^53, so clients that read JSON numbers as doubles keep them exact.
    private var nextLease = UInt64.random(in: 1...(1 << 52))

    /// Drops the expired leases of `cursor` and returns them.
    mutating func expire(cursor: String, now: ContinuousClock.Instant) -> [UInt64: Lease] {
        let expired = leases.filter { $0.value.cursor == cursor && $0.value.expires <= now }
        for lease in expired.keys { leases[lease] = nil }
        return expired
    }

    /// Leases the batch `firstFree` picks among those of `epoch` not leased (it gets the
    /// leased ones), for `seconds`. Call ``expire(cursor:now:)`` first.
    mutating func lease(
        cursor: String, epoch: Int, seconds: Double, now: ContinuousClock.Instant, firstFree: (Set<Int>) -> Int?
    ) -> LeaseOutcome {
        let held = leases.values.filter { $0.cursor == cursor && $0.epoch == epoch }
        guard let batch = firstFree(Set(held.map(\.batch))) else {
            guard let soonest = held.map(\.expires).min() else { return .complete }
            return .wait(seconds: max(0.05, now.duration(to: soonest).seconds))
        }
        let lease = nextLease
        nextLease += 1
        leases[lease] = Lease(cursor: cursor, epoch: epoch, batch: batch, expires: now + .milliseconds(Int64(seconds * 1000)))
        return .leased(batch: batch, lease: lease)
    }

    /// The lease if it is `cursor`'s and has not expired.
    func held(_ lease: UInt64, by cursor: String, now: ContinuousClock.Instant) -> Lease? {
        guard let found = leases[lease], found.cursor == cursor, found.expires > now else { return nil }
        return found
    }

    /// Ends a lease (its batch is done, or goes back to the group).
    mutating func remove(_ lease: UInt64) { leases[lease] = nil }

    /// Ends every lease of `cursor`.
    mutating func removeAll(cursor: String) {
        for (lease, held) in leases where held.cursor == cursor { leases[lease] = nil }
    }
}
