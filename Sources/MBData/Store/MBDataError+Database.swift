import GRDB

extension MBDataError {
    /// The SQLite result code (extended, e.g. `SQLITE_IOERR_SHORT_READ`) of the GRDB
    /// `DatabaseError` this error was made from; nil when SQLite did not fail.
    ///
    /// GRDB's `ResultCode` patterns match a primary code against its extended codes:
    ///
    /// ```swift
    /// switch error.databaseResultCode {
    /// case .SQLITE_BUSY?, .SQLITE_LOCKED?: // another connection holds the file; retry
    /// case .SQLITE_FULL?:                  // the disk is full
    /// case .SQLITE_IOERR?:                 // any I/O error
    /// default: break
    /// }
    /// ```
    public var databaseResultCode: ResultCode? {
        (cause as? DatabaseError)?.extendedResultCode
    }

    /// `error` as an ``MBDataError``: one already is (or a `CancellationError`) passes through
    /// unchanged, any other (GRDB's `DatabaseError` above all) becomes `code` with `message`
    /// and stays as the cause.
    package static func wrapping(_ error: any Error, _ code: Code, _ message: String, source: String?) -> any Error {
        if error is MBDataError || error is CancellationError { return error }
        return MBDataError(code, message, source: source, cause: error)
    }
}
