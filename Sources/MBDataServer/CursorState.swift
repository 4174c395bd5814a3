import Foundation
import HTTPTypes
import HummingbirdCore
import MBData

/// What a consumer has acknowledged of one plan: the document `GET /v1/cursors/{id}`
/// returns, `PUT` restores, and the state database stores.
struct CursorState: Codable, Sendable, Equatable {
    struct EpochProgress: Codable, Sendable, Equatable {
        var epoch: Int
        var lowWatermark: Int
        var ackedAbove: [Int]
    }

    var cursor: String
    var dataset: String
    var group: String
    var mode: StreamMode
    var rank: Int
    var replica: Int
    var plan: PlanParameters
    var planFingerprint: String
    var datasetVersion: Int
    var batchesPerEpoch: Int
    var epochs: [EpochProgress]

    /// The cursor id: the same request parameters always name the same cursor.
    static func id(dataset: String, group: String, mode: StreamMode, parameters p: PlanParameters, rank: Int, replica: Int) -> String {
        let key = [dataset, group, mode.rawValue, p.key, "\(rank)", "\(replica)"].joined(separator: "\u{0}")
        return "c-" + String(ShardFormat.xxh64(Array(key.utf8)), radix: 16).leftPadded(to: 16)
    }

    var key: String { Self.id(dataset: dataset, group: group, mode: mode, parameters: plan, rank: rank, replica: replica) }

    /// Checks a state a client sent (`PUT /v1/cursors/{id}`): its plan parameters by the
    /// rules of a batch request, its epochs against the plan's batch count.
    func validate() throws {
        var query: [(Substring, Substring)] = [
            ("batch_size", "\(plan.batchSize)"), ("seed", "\(plan.seed)"), ("world", "\(plan.world)"), ("rank", "\(rank)"),
            ("tail", Substring(plan.tail.rawValue)), ("shuffle", "\(plan.shuffle)"), ("group", Substring(group)),
        ]
        if let split = plan.split { query.append(("split", Substring(split))) }
        if mode != .share { query += [("mode", Substring(mode.rawValue)), ("replica", "\(replica)"), ("replicas", "\(replica + 1)")] }
        do {
            _ = try PlanRequest(query: PlanRequest.Query(query), leasing: mode == .share)
        } catch let error as ServeError {
            throw ServeError(.badRequest, "invalid_body", "the cursor state's plan is invalid: \(error.message)")
        }
        for progress in epochs {
            guard progress.epoch >= 0, (0...batchesPerEpoch).contains(progress.lowWatermark),
                progress.ackedAbove.allSatisfy({ $0 > progress.lowWatermark && $0 < batchesPerEpoch }),
                Set(progress.ackedAbove).count == progress.ackedAbove.count
            else {
                throw ServeError(
                    .badRequest, "invalid_body",
                    "epoch \(progress.epoch) of the cursor state: expected epoch ≥ 0, low_watermark in 0...\(batchesPerEpoch) and distinct acked_above batches between it and \(batchesPerEpoch)")
            }
        }
        guard Set(epochs.map(\.epoch)).count == epochs.count else {
            throw ServeError(.badRequest, "invalid_body", "the cursor state lists an epoch twice")
        }
    }

    func progress(epoch: Int) -> LoaderCheckpoint.EpochCursor {
        guard let found = epochs.first(where: { $0.epoch == epoch }) else { return .init(epoch: epoch) }
        return .init(epoch: epoch, lowWatermark: found.lowWatermark, finishedAbove: found.ackedAbove)
    }

    /// Records acks; returns how many batches were newly acked.
    mutating func ack(epoch: Int, batches: [Int]) -> Int {
        var progress = progress(epoch: epoch)
        let added = batches.reduce(0) { $0 + (progress.finish($1) ? 1 : 0) }
        epochs.removeAll { $0.epoch == epoch }
        epochs.append(EpochProgress(epoch: epoch, lowWatermark: progress.lowWatermark, ackedAbove: progress.finishedAbove))
        epochs.sort { $0.epoch < $1.epoch }
        return added
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
