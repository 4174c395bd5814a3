import Foundation
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
        let key = [dataset, group, mode.rawValue, "\(p.seed)", "\(p.batchSize)", "\(p.world)", p.tail.rawValue, p.split ?? "", "\(p.shuffle)", "\(rank)", "\(replica)"]
            .joined(separator: "\u{0}")
        return "c-" + String(ShardFormat.xxh64(Array(key.utf8)), radix: 16).leftPadded(to: 16)
    }

    var key: String { Self.id(dataset: dataset, group: group, mode: mode, parameters: plan, rank: rank, replica: replica) }

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
