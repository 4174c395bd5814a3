import Foundation

/// What verifying a shard directory found.
public struct ShardVerifyReport: Sendable, Codable {
    public var batchesChecked = 0
    public var samplesChecked = 0
    public var problems: [String] = []
    public var isValid: Bool { problems.isEmpty }
}

extension ShardSet {
    /// Checks every shard's hash, every frame's checksum and decoding, every batch's
    /// safetensors header, and that each epoch holds every sample of the plan exactly once
    /// (less the dropped tail) with the same batch count on every rank.
    public func verify(maxProblems: Int = 20) -> ShardVerifyReport {
        var report = ShardVerifyReport()
        func problem(_ text: String) { if report.problems.count < maxProblems { report.problems.append(text) } }
        let plan = manifest.plan
        let world = plan.parameters.world
        let localBatch = plan.parameters.batchSize / world
        var seenBatches: [Int: Set<[Int]>] = [:]
        var idsByEpoch: [Int: [Int64]] = [:]

        for (shardIndex, shard) in manifest.shards.enumerated() {
            let path = (directory as NSString).appendingPathComponent(shard.file)
            if let digest = try? FileByteStream.digest(of: path), digest != shard.xxh64 {
                problem("\(shard.file): content hash \(digest) differs from the manifest's \(shard.xxh64)")
            }
            for (entryIndex, entry) in entries[shardIndex].enumerated() {
                report.batchesChecked += 1
                let label = "\(shard.file): epoch \(entry.epoch) batch \(entry.batch) rank \(entry.rank)"
                let buffer: [UInt8]
                do {
                    buffer = try batch(shard: shardIndex, entry: entryIndex)
                } catch {
                    problem("\(label): \(error)")
                    continue
                }
                do {
                    let tensors = try SafetensorsReader(buffer)
                    let ids = try tensors.int64Values("_id", in: buffer)
                    guard ids.count == localBatch else {
                        problem("\(label): \(ids.count) rows, expected \(localBatch)")
                        continue
                    }
                    let real = ids.filter { $0 >= 0 }
                    if real.count != Int(entry.samples) { problem("\(label): \(real.count) samples, the footer says \(entry.samples)") }
                    idsByEpoch[Int(entry.epoch), default: []] += real
                    report.samplesChecked += real.count
                } catch {
                    problem("\(label): \(error)")
                }
                if seenBatches[Int(entry.epoch), default: []].insert([Int(entry.batch), Int(entry.rank)]).inserted == false {
                    problem("\(label): appears twice")
                }
            }
        }
        let expectedPerEpoch = plan.parameters.tail == .drop ? manifest.dataset.samples - plan.droppedPerEpoch : manifest.dataset.samples
        for epoch in plan.firstEpoch..<(plan.firstEpoch + plan.epochs) {
            let batches = seenBatches[epoch] ?? []
            if batches.count != plan.batchesPerEpoch * world {
                problem("epoch \(epoch): \(batches.count) batches, expected \(plan.batchesPerEpoch) on each of \(world) ranks")
            }
            let ids = idsByEpoch[epoch] ?? []
            let distinct = Set(ids)
            if distinct.count != ids.count { problem("epoch \(epoch): \(ids.count - distinct.count) samples appear more than once") }
            if ids.count != expectedPerEpoch {
                problem("epoch \(epoch): \(ids.count) samples, expected \(expectedPerEpoch) (\(manifest.dataset.samples) less \(plan.parameters.tail == .drop ? plan.droppedPerEpoch : 0) dropped)")
            }
            if let outside = distinct.first(where: { $0 < 1 || $0 > manifest.dataset.maxId }) {
                problem("epoch \(epoch): sample \(outside) is outside the dataset version's ids 1…\(manifest.dataset.maxId)")
            }
        }
        return report
    }

    /// The same checks, run on a thread of their own (they read and decode every frame).
    public func verify(maxProblems: Int = 20) async throws -> ShardVerifyReport {
        let shards = self
        return try await runOnThread { shards.verify(maxProblems: maxProblems) }
    }
}
