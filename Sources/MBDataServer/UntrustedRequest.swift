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

    /// The output schema and batch an outputs submission is checked against here: `pred`
    /// int64 and `prob` float32[3] for a batch of samples 5, 6, 7 and a padding row.
    package static let outputsSchema = try! Schema(
        name: "preds", fields: [Field(name: "pred", dtype: .int64), Field(name: "prob", dtype: .float32, shape: [3])])
    package static let outputsBatchIDs: [Int64?] = [5, 6, 7, nil]

    /// An outputs submission's body (`lz4`: sent as an LZ4 frame) as
    /// `POST /v1/cursors/{id}/outputs` reads it, then checked as `commitOutputs` checks it,
    /// against ``outputsSchema`` and ``outputsBatchIDs``.
    package static func outputs(_ body: Data, lz4: Bool) throws {
        let tensors = try OutputsBody.tensors([UInt8](body), encoding: lz4 ? .lz4 : .safetensors, limit: 1 << 24)
        _ = try OutputSubmission.validate(tensors, schema: outputsSchema, expectedIDs: outputsBatchIDs)
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
