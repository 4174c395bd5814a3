import Foundation

extension ShardManifest {
    /// The manifest's `packing` member: the spec the batches were packed with, the batches of
    /// each epoch held (packed epochs differ in length) and what packing did.
    public struct PackingInfo: Codable, Sendable, Hashable {
        /// The packed field.
        public var field: String
        /// Tokens per row, L.
        public var rowLength: Int
        /// Samples per packing window.
        public var window: Int
        /// What happened to samples longer than a row.
        public var overlong: OverlongPolicy
        /// Global batches of each epoch held, first epoch first.
        public var batchesPerEpoch: [Int]
        /// Packing statistics summed over the epochs held.
        public var statistics: PackingStatistics
        /// Non-padding tokens over all tokens of the rows (``PackingStatistics/efficiency``).
        public var efficiency: Double

        /// The info of `spec`, epochs of `batchesPerEpoch` batches and `statistics`.
        public init(spec: PackingSpec, batchesPerEpoch: [Int], statistics: PackingStatistics) {
            field = spec.field
            rowLength = spec.rowLength
            window = spec.packer.window
            overlong = spec.packer.overlong
            self.batchesPerEpoch = batchesPerEpoch
            self.statistics = statistics
            efficiency = statistics.efficiency
        }

        /// The spec the batches were packed with.
        ///
        /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for an invalid spec.
        public func spec() throws -> PackingSpec {
            try PackingSpec(field: field, rowLength: rowLength, window: window, overlong: overlong)
        }

        /// A packed set's counts: a valid spec naming a packable field, one batch count per
        /// epoch with `plan.batches_per_epoch` their largest, and `totals.batches` their sum
        /// on every rank.
        func validate(plan: PlanInfo, totals: Totals, schema: Schema, refuse: (String) -> MBDataError) throws {
            do { _ = try spec() } catch let error as MBDataError { throw refuse("packing: \(error.message)") }
            guard let packed = schema.field(named: field), packed.shape == [nil], packed.dtype.itemSize != nil else {
                throw refuse("packing.field '\(field.prefix(64))' is not a variable-length 1-D field of a fixed-size dtype")
            }
            guard batchesPerEpoch.count == plan.epochs, batchesPerEpoch.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }),
                plan.batchesPerEpoch == batchesPerEpoch.max()
            else {
                throw refuse("packing.batches_per_epoch lists \(batchesPerEpoch.count) epochs for \(plan.epochs), or its largest is not plan.batches_per_epoch")
            }
            let batches = CheckedSize.product(batchesPerEpoch.reduce(0, +), plan.parameters.world)
            guard totals.batches == batches else {
                throw refuse("totals.batches is \(totals.batches), but packing.batches_per_epoch on \(plan.parameters.world) ranks make \(batches.map(String.init) ?? "more than \(Int.max)")")
            }
        }
    }
}

extension ShardManifest.PackingInfo {
    /// One line for `shard` and `inspect`: spec, efficiency, split and dropped samples.
    public var summary: String {
        let s = statistics
        return "packing \(field) into rows of \(rowLength) (window \(window), overlong \(overlong.rawValue)): "
            + String(format: "efficiency %.2f%%", efficiency * 100)
            + ", \(s.rows) rows, \(s.tokens) tokens, \(s.paddingTokens) padding; \(s.splitSamples) samples split, \(s.droppedSamples) dropped (\(s.droppedTokens) tokens), \(s.emptySamples) empty"
    }
}
