import Synchronization

/// A producer of packed batches (one dataset's or a mixture's): each epoch's layout packed
/// once and kept, batches collated from it. Blocks: call it from a worker thread, never from
/// the cooperative pool.
package protocol PackedProducer: BatchProducer {
    /// The plan the producer packs.
    associatedtype Plan: PackedBatching
    /// Each epoch's layout of the plan, made once and kept.
    var layouts: PackedLayouts<Plan> { get }
    /// The safetensors buffer of `item` and its real (non-padding) segments.
    func collated(_ item: PlanItem) throws -> (buffer: [UInt8], segments: Int)
    /// The LZ4 level of `produce(_:)`.
    var level: Int32 { get }
    /// Whether frames carry LZ4's content checksum.
    var contentChecksum: Bool { get }
}

extension PackedProducer {
    /// The packed plan's fingerprint.
    package var fingerprint: String { layouts.plan.fingerprint }

    /// The layout of `epoch`, packed once and kept (a few integers per window).
    package func layout(epoch: Int) -> PackedEpochLayout { layouts.layout(epoch: epoch) }

    /// Whether `epoch`'s layout was made already.
    package func hasLayout(epoch: Int) -> Bool { layouts.hasLayout(epoch: epoch) }

    /// Global batches of `epoch`.
    package func batchesPerEpoch(epoch: Int) -> Int { layouts.plan.batchesPerEpoch(layout(epoch: epoch)) }

    /// `item` as one LZ4 frame at the producer's level.
    package func produce(_ item: PlanItem) throws -> ReadyBatch { try produce(item, level: level) }

    /// `item` as one LZ4 frame at `level` with its xxh64; the sample count is its segments.
    package func produce(_ item: PlanItem, level: Int32) throws -> ReadyBatch {
        let (buffer, segments) = try collated(item)
        let frame = try LZ4Frame.compress(buffer, level: level, contentChecksum: contentChecksum)
        return ReadyBatch(
            epoch: item.epoch, batch: item.batch, rank: item.rank, sampleCount: segments, uncompressedSize: buffer.count, frame: frame,
            checksum: ShardFormat.xxh64(frame))
    }

    /// The metadata of `item`'s batch packed by `spec`, with `extra` entries.
    static func metadata(_ item: PlanItem, spec: PackingSpec, extra: [String: String] = [:]) -> [String: String] {
        [
            "format": "mbdata-batch-1", "epoch": String(item.epoch), "batch": String(item.batch), "rank": String(item.rank),
            "packing": spec.key,
        ].merging(extra) { first, _ in first }
    }
}

/// Each epoch's ``PackedEpochLayout`` of a packed plan, made once and kept.
package final class PackedLayouts<Plan: PackedBatching>: Sendable {
    package let plan: Plan
    private let layouts = Mutex<[Int: PackedEpochLayout]>([:])

    /// The layouts of `plan`.
    package init(_ plan: Plan) {
        self.plan = plan
    }

    /// The layout of `epoch`, packed on first use.
    package func layout(epoch: Int) -> PackedEpochLayout {
        if let known = layouts.withLock({ $0[epoch] }) { return known }
        let made = plan.layout(epoch: epoch)
        layouts.withLock { $0[epoch] = made }
        return made
    }

    /// Whether `epoch`'s layout was made already.
    package func hasLayout(epoch: Int) -> Bool { layouts.withLock { $0[epoch] != nil } }
}
