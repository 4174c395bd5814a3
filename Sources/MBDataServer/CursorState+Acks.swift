import Foundation
import HTTPTypes
import HummingbirdCore
import MBData
import MBDataWire

/// The daemon's rules of a cursor: its id, the checks of a restored state and of an ack,
/// and the bookkeeping of acks. The document itself is `MBDataWire`'s.
extension CursorState {
    /// The cursor id: the same request parameters always name the same cursor. A packed
    /// plan's spec is part of the key (an unpacked cursor's id is what it always was).
    static func id(
        dataset: String, group: String, mode: StreamMode, parameters p: PlanParameters, packing: PackingSpec? = nil, rank: Int, replica: Int
    ) -> String {
        let parts = [dataset, group, mode.rawValue, p.key, "\(rank)", "\(replica)"] + (packing.map { [$0.key] } ?? [])
        return hashedID(prefix: "c-", key: parts.joined(separator: "\u{0}"))
    }

    /// `prefix` and the 16 lower-case hex digits of xxh64(`key`).
    static func hashedID(prefix: String, key: String) -> String {
        prefix + XXH64.hex(ShardFormat.xxh64(Array(key.utf8)))
    }

    var key: String { Self.id(dataset: dataset, group: group, mode: mode, parameters: plan, packing: packing, rank: rank, replica: replica) }

    /// Checks a state a client sent (`PUT /v1/cursors/{id}`): its plan parameters by the
    /// rules of a batch request, its epochs against the plan's batch count.
    func validate() throws {
        // Checked before `replica + 1` below, which would trap at Int.max (a PUT did).
        guard mode != .infer, output == nil else {
            throw ServeError(.badRequest, "invalid_body", "an inference cursor's state cannot be restored: it advances by submitting outputs")
        }
        guard PlanRequest.replicas.contains(replica), mode != .share || replica == 0 else {
            throw ServeError(.badRequest, "invalid_body", "the cursor state's replica must be in 0..<\(PlanRequest.replicas.upperBound) (0 in share mode), got \(replica)")
        }
        if let mixture, dataset != ServedMixture.name(of: mixture.sources.map(\.name)) {
            throw ServeError(
                .badRequest, "invalid_body", "a mixture cursor's dataset must be \(ServedMixture.name(of: mixture.sources.map(\.name))), got \(dataset.prefix(64))")
        }
        var query = PlanQuery(plan: plan, rank: rank, group: group, packing: packing, mixture: mixture.map(MixtureQuery.init(pinned:))).items.map { (Substring($0.name), Substring($0.value)) }
        if mode != .share { query += [("mode", Substring(mode.rawValue)), ("replica", "\(replica)"), ("replicas", "\(replica + 1)")] }
        do {
            _ = try PlanRequest(query: PlanRequest.Query(query), leasing: mode == .share)
        } catch let error as ServeError {
            throw ServeError(.badRequest, "invalid_body", "the cursor state's plan is invalid: \(error.message)")
        }
        guard batchesPerEpoch > 0, datasetVersion >= 0 else {
            throw ServeError(.badRequest, "invalid_body", "the cursor state's batches_per_epoch must be positive and its dataset_version not negative")
        }
        for progress in epochs {
            guard PlanRequest.epochs.contains(progress.epoch), (0...batchesPerEpoch).contains(progress.lowWatermark),
                progress.finishedAbove.allSatisfy({ $0 > progress.lowWatermark && $0 < batchesPerEpoch }),
                Set(progress.finishedAbove).count == progress.finishedAbove.count
            else {
                throw ServeError(
                    .badRequest, "invalid_body",
                    "epoch \(progress.epoch) of the cursor state: expected epoch in \(PlanRequest.epochs), low_watermark in 0...\(batchesPerEpoch) and distinct acked_above batches between it and \(batchesPerEpoch)")
            }
        }
        guard Set(epochs.map(\.epoch)).count == epochs.count else {
            throw ServeError(.badRequest, "invalid_body", "the cursor state lists an epoch twice")
        }
    }

    func progress(epoch: Int) -> LoaderCheckpoint.EpochCursor {
        epochs.first { $0.epoch == epoch } ?? .init(epoch: epoch)
    }

    /// Refuses an ack outside the plan: an epoch outside `PlanRequest.epochs`, a batch
    /// outside `0..<count`, the epoch's batches (default ``batchesPerEpoch``; a packed
    /// epoch's own count).
    func checkAck(epoch: Int, batches: [Int], count: Int? = nil) throws {
        guard PlanRequest.epochs.contains(epoch) else {
            throw ServeError(.badRequest, "invalid_body", "epoch \(epoch) is outside \(PlanRequest.epochs) of cursor \(cursor)")
        }
        let count = count ?? batchesPerEpoch
        if let bad = batches.first(where: { $0 < 0 || $0 >= count }) {
            throw ServeError(.badRequest, "invalid_body", "batch \(bad) is outside 0..<\(count) of epoch \(epoch) of cursor \(cursor)")
        }
    }

    /// Records acks; returns how many batches were newly acked. Linear in the batches acked
    /// and held: a body of a million batches costs a million set operations, not their square.
    mutating func ack(epoch: Int, batches: [Int]) -> Int {
        let found = epochs.firstIndex { $0.epoch == epoch }
        var lowWatermark = found.map { epochs[$0].lowWatermark } ?? 0
        var above = Set(found.map { epochs[$0].finishedAbove } ?? [])
        var added = 0
        for batch in batches where batch >= lowWatermark && above.insert(batch).inserted { added += 1 }
        while above.remove(lowWatermark) != nil { lowWatermark += 1 }
        let progress = LoaderCheckpoint.EpochCursor(epoch: epoch, lowWatermark: lowWatermark, finishedAbove: above.sorted())
        if let found {
            epochs[found] = progress
        } else {
            epochs.append(progress)
            epochs.sort { $0.epoch < $1.epoch }
        }
        return added
    }

    /// The batches of `epoch` not yet acked, in order, from `start`, of the epoch's `count`
    /// batches (default ``batchesPerEpoch``).
    func unacked(epoch: Int, from start: Int = 0, count: Int? = nil) -> [Int] {
        let progress = epochs.first { $0.epoch == epoch }
        let acked = Set(progress?.finishedAbove ?? [])
        let first = max(start, progress?.lowWatermark ?? 0)
        let count = count ?? batchesPerEpoch
        guard first < count else { return [] }
        return (first..<count).filter { !acked.contains($0) }
    }

    /// The first batch of `epoch` neither acked nor in `skipped`, of the epoch's `count`
    /// batches (default ``batchesPerEpoch``).
    func firstUnacked(epoch: Int, skipping skipped: Set<Int>, count: Int? = nil) -> Int? {
        let progress = epochs.first { $0.epoch == epoch }
        let acked = Set(progress?.finishedAbove ?? [])
        let first = progress?.lowWatermark ?? 0
        let count = count ?? batchesPerEpoch
        guard first < count else { return nil }
        return (first..<count).first { !acked.contains($0) && !skipped.contains($0) }
    }
}
