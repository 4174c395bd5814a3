/// The one error type of the library.
///
/// An error carries a growable ``Code``, a message saying what was expected and what was
/// found, and — where it applies — the source, the record within it and the field, so the
/// user can go straight to the bad input. The error it was made from, if any, stays as
/// ``cause``: a trainer's own error, or GRDB's `DatabaseError` with its SQLite result code
/// (MBData's `databaseResultCode`), so `SQLITE_BUSY`, `SQLITE_FULL` and `SQLITE_IOERR` can be
/// told apart.
///
/// A code is a pattern for any error, as GRDB's `ResultCode` is:
///
/// ```swift
/// do {
///     try await loader.run(trainer: trainer)
/// } catch MBDataError.Code.trainerFailed {
///     // the trainer threw; `(error as? MBDataError)?.cause` is its error
/// } catch MBDataError.Code.storage {
///     // SQLite or the file system failed
/// }
/// ```
///
/// Messages name the library's own parameters, never a command-line flag: the `mbdata`
/// command adds the flag where it reports the error.
public struct MBDataError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is. New codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The code's name, e.g. `storage`.
        public var description: String { name }

        /// A schema document is not valid JSON or breaks the schema format.
        public static let invalidSchema = Code("invalidSchema")
        /// A source record is malformed (bad JSON, bad CSV quoting, bad base64, truncated file…).
        public static let malformedRecord = Code("malformedRecord")
        /// A record is well formed but does not fit the schema (shape, dtype, range, missing or unknown field).
        public static let schemaMismatch = Code("schemaMismatch")
        /// A source file (a sample source, a schema file, a shard or manifest) cannot be
        /// opened or read.
        public static let unreadableSource = Code("unreadableSource")
        /// A source is empty or holds no records.
        public static let emptySource = Code("emptySource")
        /// The command line or API call asked for something inconsistent.
        public static let invalidArgument = Code("invalidArgument")
        /// The dataset file is not an mbdata dataset, is from a newer format, or is damaged.
        public static let invalidDataset = Code("invalidDataset")
        /// More bad records than `IngestOptions.maxErrors` (MBData) allows while they are skipped.
        public static let tooManyErrors = Code("tooManyErrors")
        /// A trainer threw; ``MBDataError/cause`` is the trainer's own error, as thrown.
        public static let trainerFailed = Code("trainerFailed")
        /// SQLite or the file system failed. When SQLite failed, ``MBDataError/cause`` is
        /// GRDB's `DatabaseError` and `databaseResultCode` (MBData) its result code.
        public static let storage = Code("storage")
        /// Stored bytes (a shard, a frame, a manifest, a batch) fail a check the format
        /// requires: a size, count or offset out of range, a checksum or a total that differs.
        public static let corruptData = Code("corruptData")
        /// One record or value needs more memory than the documented per-record limit.
        public static let limitExceeded = Code("limitExceeded")
        /// A daemon or another network peer cannot be reached, refused or cut the connection,
        /// answered with a server error, or failed a stream. Retrying later may succeed.
        public static let unavailable = Code("unavailable")
        /// The outputs of this batch, or of some of its samples, are already committed
        /// (MBData's `Dataset.commitOutputs(_:batch:of:)`); nothing was written.
        public static let alreadyDone = Code("alreadyDone")

        /// Whether `error` is an ``MBDataError`` of this code: `catch MBDataError.Code.storage`.
        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? MBDataError)?.code == code
        }
    }

    /// What kind of failure this is; `catch MBDataError.Code.storage` matches on it.
    public var code: Code
    /// What was expected and what was found, without the source, location and field
    /// (``description`` puts them together).
    public var message: String
    /// The source the error is about: a file path, `-` for stdin, or a dataset path.
    public var source: String?
    /// Where in the source: `line 12`, `record 7`, `row 3`.
    public var location: String?
    /// The schema field the error is about.
    public var field: String?
    /// The parameter of the API call the error is about, as `Type.property`
    /// (`IngestOptions.maxRecordBytes`, `SourceSpec.sequenceLength`) or an argument label
    /// (`schema`). A front end names its own option for it: the `mbdata` command appends the flag.
    public var parameter: String?
    /// The underlying error, if any: the trainer's own error for ``Code/trainerFailed``,
    /// GRDB's `DatabaseError` when SQLite failed, the decoder's error for a bad document.
    public var cause: (any Error & Sendable)?

    /// An error with its context; absent parts are nil.
    ///
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: What was expected and what was found.
    ///   - source: The file, `-` or dataset path it concerns.
    ///   - location: Where in the source: `line 12`, `record 7`.
    ///   - field: The schema field it concerns.
    ///   - parameter: The API parameter it concerns, as `Type.property`.
    ///   - cause: The error it was made from, kept as is.
    public init(
        _ code: Code, _ message: String, source: String? = nil, location: String? = nil,
        field: String? = nil, parameter: String? = nil, cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.source = source
        self.location = location
        self.field = field
        self.parameter = parameter
        self.cause = cause
    }

    /// `source:location: field 'f': message`, with absent parts left out.
    public var description: String {
        var prefix = [source, location].compactMap { $0 }.joined(separator: ":")
        if !prefix.isEmpty { prefix += ": " }
        if let field { prefix += "field '\(field)': " }
        var text = prefix + message
        if let cause { text += " (\(cause))" }
        return text
    }

    /// The same error with context filled in where it was still missing.
    package func located(source: String? = nil, location: String? = nil, field: String? = nil) -> MBDataError {
        var copy = self
        if copy.source == nil { copy.source = source }
        if copy.location == nil { copy.location = location }
        if copy.field == nil { copy.field = field }
        return copy
    }
}
