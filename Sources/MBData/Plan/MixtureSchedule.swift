/// The interleaving of one mixture epoch: which source fills each of its `total` positions.
///
/// Source i's k-th draw (of cᵢ) is placed at the time `(k + ½) / cᵢ` in the unit interval, and
/// the epoch is every source's draws merged by time, ties going to the lower source index —
/// a stride schedule (Webster/Sainte-Laguë apportionment), so each source is spread evenly
/// through the epoch rather than drawn in runs. Two consecutive draws of source i — the
/// last of one epoch and the first of the next too — are at most `⌈total / cᵢ⌉ + N − 2`
/// positions apart (1 when N = 1), N the number of sources with a draw: between them lies an
/// interval of length 1/cᵢ, which holds at most ⌈cⱼ / cᵢ⌉ draws of each other source j.
///
/// Nothing is stored per position: ``slot(at:)`` counts, for each source, its draws up to the
/// position's own time (exact integer arithmetic), which lands within N/2 + 1 positions of
/// the answer, then merges the rest of the way — O(N²) with N sources, whatever the epoch
/// size; each further position of ``slots(_:)`` costs O(N). ``position(of:)`` is O(N).
public struct MixtureSchedule: Sendable, Hashable {
    /// Draws of each source in the epoch.
    public let counts: [Int]
    /// Positions in the epoch: the sum of ``counts``.
    public let total: Int

    /// The schedule of an epoch with `counts[i]` draws of source i; counts must not be
    /// negative and must not all be zero (a precondition; ``MixturePlan`` checks its own).
    public init(counts: [Int]) {
        precondition(counts.allSatisfy { $0 >= 0 } && counts.contains { $0 > 0 }, "a schedule needs non-negative counts, one positive")
        self.counts = counts
        total = counts.reduce(0, +)
    }

    /// The slot at `position`, which must be in `0..<total` (a precondition).
    public func slot(at position: Int) -> MixtureSlot {
        var cursor = cursor(before: position)
        return cursor.advance()
    }

    /// The slots at `positions`, in order (a sub-range of `0..<total`, a precondition).
    public func slots(_ positions: Range<Int>) -> [MixtureSlot] {
        guard let first = positions.first else { return [] }
        var cursor = cursor(before: first)
        return positions.map { _ in cursor.advance() }
    }

    /// The position of `slot` in the epoch: the inverse of ``slot(at:)``. `slot.draw` must be
    /// in `0..<counts[slot.source]` (a precondition).
    public func position(of slot: MixtureSlot) -> Int {
        let (source, draw) = (slot.source, slot.draw)
        precondition(counts.indices.contains(source) && draw >= 0 && draw < counts[source], "no draw \(draw) of source \(source)")
        var position = draw
        for other in counts.indices where other != source && counts[other] > 0 {
            // Draws l of `other` with (2l+1)/c_other before (2·draw+1)/c_source: odd o with
            // o·c_source < X (or ≤ X when `other` wins ties), X = (2·draw+1)·c_other.
            var scaled = Wide(2 * draw + 1, counts[other])
            if other > source { scaled.decrement() }
            let largestOdd = scaled.quotient(dividingBy: counts[source])
            position += min((largestOdd + 1) / 2, counts[other])
        }
        return position
    }

    /// A merge state whose next ``Cursor/advance()`` yields the slot at `position`.
    private func cursor(before position: Int) -> Cursor {
        precondition(position >= 0 && position < total, "position \(position) outside 0..<\(total)")
        // Every draw timed at or before (p + ½)/total: the draws k of source j with
        // (2k+1)·total ≤ (2p+1)·c_j. These are a prefix of the epoch, within N/2 + 1 of p.
        var cursor = Cursor(counts: counts, next: counts.map { count in
            count == 0 ? 0 : (Wide(2 * position + 1, count).quotient(dividingBy: total) + 1) / 2
        })
        let prefix = cursor.next.reduce(0, +)
        if prefix > position {
            for _ in position..<prefix { cursor.retreat() }
        } else {
            for _ in prefix..<position { _ = cursor.advance() }
        }
        return cursor
    }

    /// The next undrawn draw of every source, moved one slot at a time in schedule order.
    private struct Cursor {
        let counts: [Int]
        var next: [Int]

        /// The earliest undrawn slot, now drawn.
        mutating func advance() -> MixtureSlot {
            var best = -1
            for source in counts.indices where next[source] < counts[source] {
                if best < 0 || Self.precedes(source, next[source], best, next[best], counts) { best = source }
            }
            precondition(best >= 0, "advanced past the end of the epoch")
            defer { next[best] += 1 }
            return MixtureSlot(source: best, draw: next[best])
        }

        /// Un-draws the latest drawn slot.
        mutating func retreat() {
            var latest = -1
            for source in counts.indices where next[source] > 0 {
                if latest < 0 || Self.precedes(latest, next[latest] - 1, source, next[source] - 1, counts) { latest = source }
            }
            precondition(latest >= 0, "retreated past the start of the epoch")
            next[latest] -= 1
        }

        /// Whether draw `k` of source `i` comes before draw `l` of source `j`.
        static func precedes(_ i: Int, _ k: Int, _ j: Int, _ l: Int, _ counts: [Int]) -> Bool {
            let left = Wide(2 * k + 1, counts[j])
            let right = Wide(2 * l + 1, counts[i])
            return left < right || (left == right && i < j)
        }
    }
}

/// A non-negative product of two Ints in 128 bits, so the schedule's cross-multiplications
/// never overflow whatever the epoch size.
private struct Wide: Comparable {
    var high: UInt64
    var low: UInt64

    init(_ a: Int, _ b: Int) {
        (high, low) = UInt64(a).multipliedFullWidth(by: UInt64(b))
    }

    mutating func decrement() {
        if low == 0 { high -= 1 }
        low &-= 1
    }

    /// ⌊self / divisor⌋; the callers' quotients fit in an Int by construction.
    func quotient(dividingBy divisor: Int) -> Int {
        Int(UInt64(divisor).dividingFullWidth((high, low)).quotient)
    }

    static func < (lhs: Wide, rhs: Wide) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }
}
