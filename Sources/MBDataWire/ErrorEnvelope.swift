/// The body of every error answer and the payload of a stream's error message
/// (schemas/serve-protocol.md §5): `{"error": {"code": "…", "message": "…"}}`.
public struct ErrorEnvelope: Codable, Sendable, Equatable {
    /// The error's machine-readable code and its message.
    public struct Detail: Codable, Sendable, Equatable {
        /// A code of schemas/serve-protocol.md §5 (`invalid_parameter`, `cursor_busy`…).
        public var code: String
        /// What was wrong, naming the parameter, dataset or cursor.
        public var message: String

        /// A detail from its code and message.
        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    /// The error.
    public var error: Detail

    /// An envelope of `code` and `message`.
    public init(code: String, message: String) {
        error = Detail(code: code, message: message)
    }
}
