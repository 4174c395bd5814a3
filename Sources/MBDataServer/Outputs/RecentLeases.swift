/// The batches of leases that ended lately — committed, or expired — so that a submission
/// naming one learns `409 already_done` when its batch is committed (a retry of a
/// submission whose answer was lost, or a late consumer whose batch another one finished)
/// rather than `lease_expired` (schemas/serve-protocol.md §8). Bounded: past `capacity`
/// entries the oldest are forgotten.
struct RecentLeases {
    let capacity: Int
    private var batches: [UInt64: (cursor: String, batch: Int)] = [:]
    private var order: [UInt64] = []
    private var head = 0

    init(capacity: Int = 1 << 16) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    mutating func insert(_ lease: UInt64, cursor: String, batch: Int) {
        guard batches.updateValue((cursor, batch), forKey: lease) == nil else { return }
        order.append(lease)
        while batches.count > capacity {
            batches[order[head]] = nil
            head += 1
        }
        // Compacts the queue once its forgotten front outweighs what it holds.
        if head > capacity {
            order.removeFirst(head)
            head = 0
        }
    }

    /// The batch `lease` of `cursor` held, if it ended lately.
    func batch(of lease: UInt64, cursor: String) -> Int? {
        guard let found = batches[lease], found.cursor == cursor else { return nil }
        return found.batch
    }
}
