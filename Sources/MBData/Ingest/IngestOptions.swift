/// How `ingest` treats its sources.
public struct IngestOptions: Sendable, Hashable {
    /// What an ingest does with a record that is malformed or does not fit the schema.
    public enum ErrorPolicy: String, Sendable, Hashable, CaseIterable {
        /// Stop at the first bad record; the transaction holding it is rolled back, earlier ones stay.
        case fail
        /// Pass over bad records (counted and listed) until more than `maxErrors`.
        case skip
    }

    /// What to do with a bad record. Default ``ErrorPolicy/fail``.
    public var onError: ErrorPolicy = .fail
    /// With `.skip`: the run fails once more than this many records were bad. Default 100.
    public var maxErrors: Int = 100
    /// Source records per committed transaction. Default 10,000.
    public var rowsPerTransaction: Int = 10_000
    /// Puts every sample in this split. Default: `train` (unless `validationFraction` is set).
    public var split: String?
    /// Puts this fraction of samples in `val` and the rest in `train`, decided by a hash of
    /// the key (or of the whole sample without a key), so a re-run assigns the same split.
    public var validationFraction: Double?
    /// Ingest a source again even when the log says the same file was fully ingested. Default false.
    public var force: Bool = false
    /// The most memory one record may need while it is parsed — its line, a tensor, an image,
    /// a token window; a record past it stops the ingest with `.limitExceeded`.
    /// Default 256 MiB (`RecordLimits.defaultMaxRecordBytes`), at most 1 GiB.
    public var maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes

    /// The most records one transaction may hold.
    public static let maxRowsPerTransaction = 10_000_000

    /// The defaults: stop at the first bad record, 10,000 records per transaction, every sample
    /// in `train`, a 256 MiB per-record limit.
    public init() {}

    func validate() throws {
        guard (1...Self.maxRowsPerTransaction).contains(rowsPerTransaction) else {
            throw MBDataError(
                .invalidArgument, "the records per transaction must be within 1...\(Self.maxRowsPerTransaction), got \(rowsPerTransaction)",
                parameter: "IngestOptions.rowsPerTransaction")
        }
        guard (1...RecordLimits.largestMaxRecordBytes).contains(maxRecordBytes) else {
            throw MBDataError(
                .invalidArgument,
                "the per-record limit must be within 1...\(RecordLimits.largestMaxRecordBytes >> 20) MiB, got \(maxRecordBytes) bytes",
                parameter: "IngestOptions.maxRecordBytes")
        }
        guard maxErrors >= 0 else {
            throw MBDataError(.invalidArgument, "the most bad records allowed must be ≥ 0, got \(maxErrors)", parameter: "IngestOptions.maxErrors")
        }
        if split != nil && validationFraction != nil {
            throw MBDataError(
                .invalidArgument, "give either a split or a validation fraction, not both", parameter: "IngestOptions.validationFraction")
        }
        if let split, split.isEmpty || split.count > 64 || split.contains(where: { $0.isWhitespace }) {
            throw MBDataError(
                .invalidArgument, "the split must be a short name without spaces, got \"\(split)\"", parameter: "IngestOptions.split")
        }
        if let fraction = validationFraction, !(0...1).contains(fraction) {
            throw MBDataError(
                .invalidArgument, "the validation fraction must be within 0…1, got \(fraction)", parameter: "IngestOptions.validationFraction")
        }
    }

    var optionsDescription: String {
        var parts = ["on_error=\(onError.rawValue)", "batch_rows=\(rowsPerTransaction)"]
        if onError == .skip { parts.append("max_errors=\(maxErrors)") }
        if let split { parts.append("split=\(split)") }
        if let validationFraction { parts.append("val_fraction=\(validationFraction)") }
        if maxRecordBytes != RecordLimits.defaultMaxRecordBytes { parts.append("max_record_bytes=\(maxRecordBytes)") }
        return parts.joined(separator: " ")
    }
}

/// Where an ingest stands, reported after every committed chunk.
public struct IngestProgress: Sendable {
    /// The source being read, as it was named.
    public var source: String
    /// Records read from this source so far, bad ones included.
    public var recordsRead: Int
    /// Samples committed from this source so far.
    public var rowsAdded: Int
    /// Source bytes read so far (compressed bytes for an NPZ member).
    public var bytesRead: Int
    /// Records the source holds, when known before reading (NPY, NPZ, token binaries).
    public var expectedRecords: Int?
    /// Bytes the source holds, when known (nil for stdin): with ``bytesRead``, a progress fraction.
    public var expectedBytes: Int?
    /// Seconds since this source's ingest started.
    public var elapsedSeconds: Double
}

/// What one source added.
public struct IngestSummary: Sendable, Codable, Hashable {
    /// The source, as it was named.
    public var source: String
    /// The format it was read as (``SourceFormat`` raw value).
    public var format: String
    /// The run's entry in the ingest log (``DatasetInfo/IngestRecord/id``); nil when nothing was logged.
    public var ingestID: Int64?
    /// Records read, bad ones included.
    public var recordsRead: Int = 0
    /// Samples added to the dataset.
    public var rowsAdded: Int = 0
    /// Records whose key was already in the dataset.
    public var rowsSkipped: Int = 0
    /// Bad records passed over under ``IngestOptions/ErrorPolicy/skip``.
    public var rowsFailed: Int = 0
    /// Source bytes read.
    public var bytesRead: Int = 0
    /// Bytes of sample values stored (8 per scalar number, the length of each string, blob
    /// and tensor): the figure behind MB/s.
    public var payloadBytes: Int = 0
    /// Wall-clock duration, in seconds.
    public var seconds: Double = 0
    /// `xxh64:` and 16 hex digits of the bytes read, when the source was read to its end.
    public var contentHash: String?
    /// The dataset version after the last chunk this source committed.
    public var datasetVersion: Int = 0
    /// The log entry of an interrupted run this one continued.
    public var resumedFrom: Int64?
    /// The same file was already fully ingested; nothing was read.
    public var alreadyIngested: Bool = false
    /// Things to know about the run: a dropped tail of a token file, image-folder entries
    /// left out and why, and so on.
    public var notes: [String] = []
    /// The first bad records passed over.
    public var errors: [String] = []
}
