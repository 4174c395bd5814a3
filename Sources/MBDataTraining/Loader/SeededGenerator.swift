/// A reproducible random number generator (SplitMix64) for transforms. Its seed is
/// derived from the plan — seed, epoch and sample id (or batch) — never from a running
/// stream, so an augmentation is the same whether a run was resumed or not.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator started from `seed`: the same seed gives the same sequence.
    public init(seed: UInt64) { state = seed }

    init(planSeed: UInt64, epoch: Int, key: Int64, salt: UInt64) {
        var mixed = SplitMix64.mix(planSeed ^ salt)
        mixed = SplitMix64.mix(mixed ^ UInt64(truncatingIfNeeded: epoch))
        state = SplitMix64.mix(mixed ^ UInt64(bitPattern: key))
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 { SplitMix64.next(&state) }
}

/// Changes one sample's values (schema order) before collation, with its own generator.
public typealias SampleTransform = @Sendable (_ values: [SampleValue], _ random: inout SeededGenerator) throws -> [SampleValue]
/// Changes a decoded batch before a trainer sees it, with the batch's own generator.
public typealias BatchTransform = @Sendable (_ batch: Batch, _ random: inout SeededGenerator) throws -> Batch
