/// The body of `GET /healthz` while the daemon serves: `{"status": "ok"}`.
public struct HealthStatus: Codable, Sendable, Equatable {
    /// `ok` while the daemon serves.
    public var status: String

    /// A status; the daemon answers `ok`.
    public init(status: String = "ok") { self.status = status }
}
