import Foundation
import MBData
import MBDataWire

/// The daemon's parsers of request bytes, as the fuzz targets (Tests/Fuzz) call them: the
/// same functions the routes call, then what the route does with the result in memory.
/// Each throws `ServeError` on bad input and must never trap.
package enum UntrustedRequest {
    /// A batch (`leasing` false) or lease request's query string.
    package static func planQuery(_ query: String, leasing: Bool) throws {
        _ = try PlanRequest(query: query, leasing: leasing)
    }

    /// An ack body applied, as `POST /v1/cursors/{id}/acks` applies it, to a cursor of
    /// `batchesPerEpoch` batches per epoch.
    package static func ack(_ body: Data, batchesPerEpoch: Int) throws {
        var state = CursorState(
            cursor: "c-0", dataset: "d", group: "g", mode: .partition, rank: 0, replica: 0, plan: PlanParameters(seed: 0, batchSize: 1),
            planFingerprint: "xxh64:0", datasetVersion: 1, batchesPerEpoch: max(1, batchesPerEpoch), epochs: [])
        switch try AckRequest(json: body) {
        case .batches(let epoch, let batches):
            try state.checkAck(epoch: epoch, batches: batches)
            _ = state.ack(epoch: epoch, batches: batches)
            _ = state.unacked(epoch: epoch)
        case .leases(let leases):
            _ = Set(leases)
        }
    }

    /// A cursor document as `PUT /v1/cursors/{id}` reads it, at the id its own parameters
    /// make (so the fuzzer reaches the checks past the id), then acked and re-encoded.
    package static func cursorDocument(_ body: Data) throws {
        let id = (try? WireJSON.decode(CursorState.self, from: body))?.key ?? ""
        var state = try CursorState(restoring: body, id: id)
        if let first = state.epochs.first {
            _ = state.ack(epoch: first.epoch, batches: [first.lowWatermark])
            _ = state.firstUnacked(epoch: first.epoch, skipping: [])
        }
        _ = try WireJSON.encode(state)
    }
}
