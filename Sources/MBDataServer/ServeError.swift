import Foundation
import Hummingbird
import HTTPTypes
import MBData
import MBDataWire

/// An error a request gets back: an HTTP status and a JSON body
/// `{"error": {"code": …, "message": …}}`, with `"field"` for an error about one tensor of
/// an outputs submission (schemas/serve-protocol.md §5).
package struct ServeError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    package var status: HTTPResponse.Status
    package var code: String
    package var message: String
    package var field: String?
    package var headers: HTTPFields = [:]

    package init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    package var description: String { "\(status.code) \(code): \(message)" }

    static func invalidParameter(_ name: String, _ expectation: String, got value: Substring?) -> ServeError {
        let found = value.map { "got \"\($0.prefix(64))\"" } ?? "it is missing"
        return ServeError(.badRequest, "invalid_parameter", "query parameter \(name): expected \(expectation), \(found)")
    }

    static let draining = ServeError(.serviceUnavailable, "draining", "the daemon is shutting down")

    static func unknownCursor(_ id: String) -> ServeError { ServeError(.notFound, "unknown_cursor", "no cursor \(id.prefix(64))") }

    /// A write that failed with `failure`: `503 state_unavailable`, retry after a second. It
    /// changed nothing, unless it was a PostgreSQL call unanswered past its deadline: then the
    /// database may still commit it, and the retry the protocol asks for gives the same result.
    static func stateUnavailable(_ message: String, after failure: MBDataError) -> ServeError {
        let outcome = failure.cause is PostgresFailure.TimedOut ? "it may still be applied; retrying it is safe" : "nothing was changed, retry later"
        var unavailable = ServeError(.serviceUnavailable, "state_unavailable", "\(message); \(outcome)")
        unavailable.headers[.retryAfter] = "1"
        return unavailable
    }

    /// The JSON body of this error.
    var body: [UInt8] {
        Array((try? WireJSON.encode(ErrorEnvelope(code: code, message: message, field: field))) ?? Data())
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Maps any error to what the client sees: library errors keep their message; a write
    /// of `store` that failed and may succeed on a retry is `503 state_unavailable`.
    static func from(_ error: any Error, store: any StateStore) -> ServeError {
        switch error {
        case let error as ServeError: return error
        case let error as MBDataError:
            switch error.code {
            // The message without the source: a file path is none of the client's business.
            case .invalidArgument: return ServeError(.badRequest, "invalid_parameter", error.message)
            case .storage where store.isUnavailable(error): return stateUnavailable(error.message, after: error)
            default: return ServeError(.internalServerError, "internal", error.message)
            }
        case let error as any HTTPResponseError where error.status == .contentTooLarge:
            return ServeError(.contentTooLarge, "body_too_large", "request bodies are limited to \(ServeLimits.maxBodyBytes) bytes")
        case let error as any HTTPResponseError:
            return ServeError(error.status, error.status == .notFound ? "not_found" : "http_error", "\(error)")
        default: return ServeError(.internalServerError, "internal", "\(error)")
        }
    }
}

enum ServeLimits {
    static let maxBodyBytes = 1 << 20
}
