/// What a ``SampleSource`` yields for one record of its input.
public enum SourceItem: Sendable {
    /// The record's values, one per schema field in the schema's field order.
    case sample([SampleValue])
    /// A record that does not fit, with where it is (`MBDataError.location`). The ingest's
    /// ``IngestOptions/onError`` policy decides: `.fail` ends the ingest with this error,
    /// `.skip` counts it against ``IngestOptions/maxErrors`` and goes on with the next record.
    case invalid(MBDataError)
}

/// A reader of one input: conform to it to ingest a format mbdata does not read itself, and
/// hand an instance to ``Dataset/ingest(from:schema:options:progress:)``.
///
/// ```swift
/// final class SquaresSource: SampleSource {
///     let name = "squares"
///     let formatName = "squares"
///     var fingerprint: String? { "squares:0..<100" }
///     private var next = 0
///     func next() throws -> SourceItem? {
///         guard next < 100 else { return nil }
///         defer { next += 1 }
///         return .sample([.integer(Int64(next)), .integer(Int64(next * next))])
///     }
/// }
/// let summary = try await dataset.ingest(from: SquaresSource(), schema: schema)
/// ```
///
/// The contract the ingest holds a source to, and keeps itself:
/// - **What it yields.** `next()` returns one ``SourceItem`` per record, in input order, and
///   nil at the end. A sample holds one value per field of the schema, in field order, of the
///   storage class the field takes: `.integer` for integer dtypes, `.real` (or `.integer`)
///   for float dtypes, `.text` for `string`, `.blob` for `bytes` and for shaped fields (the
///   elements' little-endian bytes, row-major). The ingest checks every sample of a source it
///   did not build against the schema; one that does not fit becomes `.invalid`.
/// - **Errors.** A record that does not fit is `.invalid`, not a throw. `next()` throws only
///   when the input cannot go on (unreadable, truncated): the ingest then fails with that
///   error; transactions committed before stay, the open one is rolled back, and the ingest
///   log records the failure. The other members do not throw.
/// - **Limits.** The ingest keeps at most ``IngestOptions/rowsPerTransaction`` records of one
///   transaction (cut into blocks of about 4 MiB, four blocks queued) in memory; it does not
///   bound what one record may take. Bound that in the source: the built-in sources refuse a
///   record larger than ``IngestOptions/maxRecordBytes``.
/// - **Resuming.** A non-nil ``fingerprint`` names the input. An ingest with the fingerprint of
///   a completed one reads nothing (unless ``IngestOptions/force``); one with the fingerprint
///   of a failed, killed or cancelled one resumes: it reads the source from the start and
///   drops the records committed before, so the source must yield the same records in the
///   same order again. Without a fingerprint every ingest reads the whole input.
/// - **Cancellation.** Cancelling the task that awaits the ingest stops it between two
///   records: the open transaction is rolled back, the ingest throws `CancellationError`, and
///   the same ingest later resumes. A `next()` in progress is not interrupted.
/// - **Threads.** The ingest takes the source off the calling task: it reads the descriptive
///   properties on the database's writer thread, then calls `next()` on a thread of the
///   process-wide blocking executor, which it holds for the ingest, so `next()` may block on I/O. Calls never overlap. The source need not be
///   `Sendable`; it is handed over (`sending`) and the caller must not use it afterwards.
public protocol SampleSource: AnyObject {
    /// The input as the user would name it (a path, a URL), for messages and the ingest log.
    var name: String { get }
    /// The format, as the ingest log and ``IngestSummary/format`` record it (`jsonl`, `csv`, …).
    var formatName: String { get }
    /// A stable identity of the input (its location, size and modification time, say) that
    /// lets a re-run recognise the same ingest; nil (the default) turns that off.
    var fingerprint: String? { get }
    /// Records the input holds, when known before reading (for progress); nil by default.
    var expectedRecords: Int? { get }
    /// Bytes the input holds, when known before reading (for progress); nil by default.
    var expectedBytes: Int? { get }
    /// Bytes read so far (for progress and the ingest log); 0 by default.
    var bytesRead: Int { get }
    /// The next record, or nil at the end of the input.
    func next() throws -> SourceItem?
    /// A digest of everything read, recorded in the ingest log once the input is read whole
    /// (the built-in sources give `xxh64:` and 16 hex digits); nil (the default) records none.
    var contentHash: String? { get }
    /// Things the user should know after the run (a dropped tail, skipped entries); none by default.
    var notes: [String] { get }
    /// Dataset metadata the input defines (an image folder's class list); recorded with the
    /// first ingest, and a later ingest whose source defines a different value fails. None by default.
    var metadata: [String: String] { get }
}

extension SampleSource {
    /// No fingerprint: every ingest reads the whole input.
    public var fingerprint: String? { nil }
    /// Unknown before reading.
    public var expectedRecords: Int? { nil }
    /// Unknown before reading.
    public var expectedBytes: Int? { nil }
    /// Not counted.
    public var bytesRead: Int { 0 }
    /// No digest.
    public var contentHash: String? { nil }
    /// Nothing to report.
    public var notes: [String] { [] }
    /// No metadata.
    public var metadata: [String: String] { [:] }
}
