/// The payload of a stream's end message (schemas/serve-protocol.md §4):
/// `{"reason": "complete" | "draining", "sent": n}`.
public struct StreamEnd: Codable, Sendable, Equatable {
    /// Why the stream ended.
    public enum Reason: String, Codable, Sendable {
        /// Every batch of the request was sent.
        case complete
        /// The daemon is shutting down: reconnect and the stream resumes from the cursor.
        case draining
    }

    /// Why the stream ended.
    public var reason: Reason
    /// Batches the stream sent.
    public var sent: Int

    /// An end message's payload.
    public init(reason: Reason, sent: Int) {
        self.reason = reason
        self.sent = sent
    }
}
