/// How much memory one record may take while it is parsed: the longest line, the largest
/// tensor, image or token window. Past it a source stops with `.limitExceeded` instead of
/// growing without bound.
public enum RecordLimits {
    /// The default per-record limit: 256 MiB.
    public static let defaultMaxRecordBytes = 256 << 20
    /// The largest per-record limit that may be asked for: 1 GiB (zlib and CRC-32 take 32-bit lengths).
    public static let largestMaxRecordBytes = 1 << 30
    /// The longest token window ``SourceSpec/sequenceLength`` may ask for: 2^24 tokens.
    public static let maxSequenceLength = 1 << 24

    static func exceeded(_ what: String, limit: Int) -> MBDataError {
        MBDataError(
            .limitExceeded, "\(what) exceeds the per-record limit of \(describe(limit))", parameter: "IngestOptions.maxRecordBytes")
    }

    static func describe(_ bytes: Int) -> String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }
}
