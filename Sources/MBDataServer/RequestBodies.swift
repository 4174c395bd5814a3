import Foundation
import HTTPTypes
import HummingbirdCore

// The parsers of what a request carries — query, ack body, cursor body — as functions of
// bytes and strings, so the fuzz targets call exactly what the routes call. Each returns a
// checked value or throws a `ServeError` (4xx); none traps on any input.

/// The body of `POST /v1/cursors/{id}/acks`.
package enum AckRequest: Sendable, Equatable {
    case batches(epoch: Int, batches: [Int])
    case leases([UInt64])

    private struct Body: Decodable {
        var epoch: Int?
        var batches: [Int]?
        var leases: [UInt64]?
    }

    /// `{"epoch": E, "batches": [...]}` or `{"leases": [...]}`, nothing else. The numbers'
    /// ranges against the cursor's plan are the cursor book's check.
    package init(json: Data) throws {
        let body: Body = try decodeJSON(json)
        switch (body.epoch, body.batches, body.leases) {
        case (nil, nil, let leases?): self = .leases(leases)
        case (let epoch?, let batches?, nil): self = .batches(epoch: epoch, batches: batches)
        default:
            throw ServeError(.badRequest, "invalid_body", "an ack is {\"epoch\": E, \"batches\": [...]} or {\"leases\": [...]}")
        }
    }
}

extension CursorState {
    /// The body of `PUT /v1/cursors/{id}`: a state document, checked by the rules of a batch
    /// request and against its own batch count, and naming `id`. Its plan is checked against
    /// the dataset by the route.
    package init(restoring json: Data, id: String) throws {
        var state: CursorState = try decodeJSON(json)
        try state.validate()
        state.epochs.sort { $0.epoch < $1.epoch }
        for index in state.epochs.indices { state.epochs[index].ackedAbove.sort() }
        guard state.cursor == id, state.key == id else {
            throw ServeError(
                .conflict, "cursor_mismatch",
                "the state names cursor \(state.cursor.prefix(64)), its parameters make \(state.key), the URL says \(id.prefix(64))")
        }
        self = state
    }
}

extension PlanRequest {
    /// The query string of a batch or lease request (`batch_size=64&seed=1…`).
    package init(query: String, leasing: Bool) throws {
        try self.init(query: URI("/?" + query).queryParameters, leasing: leasing)
    }
}

/// Decodes a JSON body; anything else is `400 invalid_body`.
private func decodeJSON<T: Decodable>(_ data: Data) throws -> T {
    do {
        return try CursorState.decoder.decode(T.self, from: data)
    } catch {
        throw ServeError(.badRequest, "invalid_body", "the request body is not the expected JSON: \(String(describing: error).prefix(300))")
    }
}
