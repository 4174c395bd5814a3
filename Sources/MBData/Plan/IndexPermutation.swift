/// A pseudo-random permutation of `0..<count`, computed one index at a time.
///
/// A balanced Feistel network over the smallest even number of bits that covers `count`,
/// with cycle walking to stay inside the domain: `index(at:)` is O(1) expected time
/// (fewer than 4 rounds of walking on average, as the domain is under 4 × count) and the
/// permutation needs O(1) memory — no shuffle buffer, and seeking to any position is free.
package struct IndexPermutation: Sendable, Hashable {
    /// The size of the domain: the permutation maps `0..<count` onto itself.
    package let count: Int
    private let halfBits: UInt64
    private let halfMask: UInt64
    private let keys: [UInt64]

    /// The permutation for `(seed, epoch)`; different epochs give independent orders.
    /// `rounds` is the number of Feistel rounds (6 by default; changing it changes every order).
    package init(count: Int, seed: UInt64, epoch: Int, rounds: Int = 6) {
        precondition(count >= 0)
        self.count = count
        var bits: UInt64 = 2
        while bits < 64 && (UInt64(1) << bits) < UInt64(max(count, 1)) { bits += 2 }
        halfBits = bits / 2
        halfMask = (UInt64(1) << halfBits) - 1
        var state = seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0x9E37_79B9_7F4A_7C15)
        keys = (0..<rounds).map { _ in SplitMix64.next(&state) }
    }

    /// The sample index at `position` of the shuffled order; `position` must be in
    /// `0..<count` (a precondition).
    package func index(at position: Int) -> Int {
        precondition(position >= 0 && position < count, "position \(position) outside 0..<\(count)")
        return cycleWalk(position, encrypt)
    }

    /// The position at which `index` appears: the inverse of ``index(at:)``, as cheap.
    /// `index` must be in `0..<count` (a precondition).
    package func position(of index: Int) -> Int {
        precondition(index >= 0 && index < count, "index \(index) outside 0..<\(count)")
        return cycleWalk(index, decrypt)
    }

    /// Applies `step` until the value is back inside `0..<count`.
    @inline(__always)
    private func cycleWalk(_ start: Int, _ step: (UInt64) -> UInt64) -> Int {
        var value = UInt64(start)
        repeat {
            value = step(value)
        } while value >= UInt64(count)
        return Int(value)
    }

    @inline(__always)
    private func decrypt(_ value: UInt64) -> UInt64 {
        var left = value >> halfBits
        var right = value & halfMask
        for key in keys.reversed() {
            let previousLeft = right ^ (SplitMix64.mix(left ^ key) & halfMask)
            right = left
            left = previousLeft
        }
        return (left << halfBits) | right
    }

    @inline(__always)
    private func encrypt(_ value: UInt64) -> UInt64 {
        var left = value >> halfBits
        var right = value & halfMask
        for key in keys {
            let mixed = left ^ (SplitMix64.mix(right ^ key) & halfMask)
            left = right
            right = mixed
        }
        return (left << halfBits) | right
    }
}
