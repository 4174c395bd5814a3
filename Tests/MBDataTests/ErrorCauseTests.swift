import Foundation
import GRDB
import Testing

@testable import MBData

/// An `MBDataError` keeps the error it was made from, and its code is a pattern.
@Suite struct ErrorCauseTests {
    @Test func aFileThatIsNotSQLiteKeepsSQLitesOwnResultCode() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("text.mbdb", String(repeating: "not a database page\n", count: 400))
        let error = try #require(#expect(throws: MBDataError.self) { try Dataset(path: path) })
        #expect(error.code == .invalidDataset)
        #expect(error.cause is DatabaseError, "\(error)")
        #expect(error.databaseResultCode == .SQLITE_NOTADB, "\(error)")
        #expect(error.description.contains("file is not a database"), "the cause is part of the message: \(error)")
    }

    @Test func aStorageErrorTellsAFullDiskFromAReadOnlyFileFromAnIOError() {
        func storage(_ code: ResultCode) -> MBDataError {
            MBDataError(.storage, "cannot write", cause: DatabaseError(resultCode: code))
        }
        func kind(_ error: MBDataError) -> String {
            switch error.databaseResultCode {
            case .SQLITE_BUSY?, .SQLITE_LOCKED?: "retry"
            case .SQLITE_FULL?: "full"
            case .SQLITE_READONLY?: "read-only"
            case .SQLITE_IOERR?: "io"
            case nil: "not SQLite"
            default: "other"
            }
        }
        #expect(kind(storage(.SQLITE_BUSY)) == "retry")
        #expect(kind(storage(.SQLITE_FULL)) == "full")
        #expect(kind(storage(.SQLITE_READONLY_DBMOVED)) == "read-only", "an extended code matches its primary code")
        #expect(kind(storage(.SQLITE_IOERR_SHORT_READ)) == "io")
        #expect(kind(MBDataError(.storage, "fsync failed")) == "not SQLite")
    }

    @Test func aDatabaseFailureNamesTheExtendedCodeThatSQLitesMessageLeavesOut() throws {
        let error = try DatabaseQueue().inDatabase { db in
            MBDataError.database(DatabaseError(resultCode: .SQLITE_IOERR_FSYNC), on: db, .storage, "cannot commit", source: "d.mbdb")
        }
        #expect(error.databaseResultCode == .SQLITE_IOERR_FSYNC)
        // "disk I/O error" is all SQLite says for each of its ~30 I/O error codes.
        #expect(error.description.contains("cannot commit [extended result code 1034]"), "\(error)")
    }

    @Test func aCodeIsAPatternForAnyError() {
        func caught(_ error: any Error) -> String {
            do {
                throw error
            } catch MBDataError.Code.storage {
                return "storage"
            } catch MBDataError.Code.corruptData {
                return "corrupt"
            } catch {
                return "other"
            }
        }
        #expect(caught(MBDataError(.storage, "x")) == "storage")
        #expect(caught(MBDataError(.corruptData, "x")) == "corrupt")
        #expect(caught(MBDataError(.unavailable, "x")) == "other")
        #expect(caught(CancellationError()) == "other")
    }

    @Test func aLimitNamesTheParameterNotAFlag() {
        let error = RecordLimits.exceeded("a line of 2 MiB", limit: 1 << 20)
        #expect(error.code == .limitExceeded)
        #expect(error.parameter == "IngestOptions.maxRecordBytes")
        #expect(!error.description.contains("--"), "the library names no command-line flag: \(error)")
    }
}
