import Foundation

/// The body of every error answer and the payload of a stream's error message
/// (schemas/serve-protocol.md §5): `{"error": {"code": "…", "message": "…"}}`, with
/// `"field"` when the error is about one tensor of an outputs submission.
public struct ErrorEnvelope: Codable, Sendable, Equatable {
    /// The error's machine-readable code and its message.
    public struct Detail: Codable, Sendable, Equatable {
        /// A code of schemas/serve-protocol.md §5 (`invalid_parameter`, `cursor_busy`…).
        public var code: String
        /// What was wrong, naming the parameter, dataset or cursor.
        public var message: String
        /// The tensor an `invalid_outputs` error is about; absent otherwise.
        public var field: String?

        /// A detail from its code, message and field.
        public init(code: String, message: String, field: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
        }
    }

    /// The error.
    public var error: Detail

    /// An envelope of `code`, `message` and `field`.
    public init(code: String, message: String, field: String? = nil) {
        error = Detail(code: code, message: message, field: field)
    }
}

extension ErrorEnvelope {
    /// The error in `bytes` — an error answer's body or a stream's error message payload;
    /// nil when they are not an error envelope.
    public static func detail(in bytes: [UInt8]) -> Detail? {
        (try? WireJSON.decode(ErrorEnvelope.self, from: Data(bytes)))?.error
    }
}
