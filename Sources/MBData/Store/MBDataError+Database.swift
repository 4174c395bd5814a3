import Foundation
import GRDB
import GRDBSQLite

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

    /// `error` as an `MBDataError`: one already is (or a `CancellationError`) passes through
    /// unchanged, any other (GRDB's `DatabaseError` above all) becomes `code` with `message`
    /// and stays as the cause.
    package static func wrapping(_ error: any Error, _ code: Code, _ message: String, source: String?) -> any Error {
        if error is MBDataError || error is CancellationError { return error }
        return MBDataError(code, message, source: source, cause: error)
    }

    /// A `DatabaseError` a statement on `db` threw, as `code` with `message`, keeping the
    /// error as the cause. SQLite's message names only the primary code ("disk I/O error"
    /// for every SQLITE_IOERR_*): the message adds the extended code and the OS error
    /// (`errno`) behind it, read from the connection before anything else runs on it.
    package static func database(_ error: DatabaseError, on db: Database, _ code: Code, _ message: String, source: String?) -> MBDataError {
        var details: [String] = []
        if error.extendedResultCode != error.resultCode { details.append("extended result code \(error.extendedResultCode.rawValue)") }
        if let connection = db.sqliteConnection {
            let number = sqlite3_system_errno(connection)
            if number != 0 { details.append("errno \(number): \(String(cString: strerror(number)))") }
        }
        let text = details.isEmpty ? message : "\(message) [\(details.joined(separator: ", "))]"
        return MBDataError(code, text, source: source, cause: error)
    }
}

extension Database {
    /// Runs `body`; a `DatabaseError` it throws becomes `MBDataError.database(…)` while the
    /// connection still holds the OS error behind it.
    func describingFailures<T>(_ code: MBDataError.Code, _ message: String, source: String?, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw MBDataError.database(error, on: self, code, message, source: source)
        }
    }
}
