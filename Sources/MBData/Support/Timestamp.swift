import Foundation

/// ISO 8601 timestamps with milliseconds, as the meta tables and manifests record them.
enum Timestamp {
    /// A format style is a value (Sendable) and costs nothing to reuse; making an
    /// `ISO8601DateFormatter` for every call cost 8% of an inference job's CPU time, one
    /// call per committed batch (Benchmarks/README.md, "Inference write-back").
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func now() -> String {
        style.format(Date())
    }
}
