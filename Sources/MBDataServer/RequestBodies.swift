import Foundation
import HTTPTypes
import HummingbirdCore
import MBData
import MBDataWire

// The parsers of what a request carries — query, ack body, cursor body — as functions of
// bytes and strings, so the fuzz targets call exactly what the routes call. Each returns a
// checked value or throws a `ServeError` (4xx); none traps on any input.

extension AckRequest {
    /// The body of `POST /v1/cursors/{id}/acks`: `{"epoch": E, "batches": [...]}` or
    /// `{"leases": [...]}`, nothing else. The numbers' ranges against the cursor's plan are
    /// the cursor book's check.
    package init(json: Data) throws {
        do {
            self = try WireJSON.decode(AckRequest.self, from: json)
        } catch DecodingError.dataCorrupted(let context) where context.debugDescription == AckRequest.shapeDescription {
            throw ServeError(.badRequest, "invalid_body", AckRequest.shapeDescription)
        } catch {
            throw invalidBody(error)
        }
    }
}

extension CursorState {
    /// The body of `PUT /v1/cursors/{id}`: a state document, checked by the rules of a batch
    /// request and against its own batch count, and naming `id`. Its plan is checked against
    /// the dataset by the route.
    package init(restoring json: Data, id: String) throws {
        var state: CursorState
        do {
            state = try WireJSON.decode(CursorState.self, from: json)
        } catch {
            throw invalidBody(error)
        }
        try state.validate()
        state.epochs.sort { $0.epoch < $1.epoch }
        for index in state.epochs.indices { state.epochs[index].finishedAbove.sort() }
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

/// A body that did not decode as the expected JSON: `400 invalid_body`.
private func invalidBody(_ error: any Error) -> ServeError {
    ServeError(.badRequest, "invalid_body", "the request body is not the expected JSON: \(String(describing: error).prefix(300))")
}
