import ArgumentParser
import Foundation
import MBData

#if canImport(Glibc)
    import Glibc
#endif

/// The documented exit status of each kind of failure (sysexits.h numbers).
enum ExitStatus {
    static let problemsFound: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let noInput: Int32 = 66
    static let unavailable: Int32 = 69
    static let ioError: Int32 = 74

    static func code(for error: MBDataError) -> Int32 {
        switch error.code {
        case .invalidArgument: usage
        case .unreadableSource: noInput
        case .unavailable: unavailable
        case .storage: ioError
        // corruptData, limitExceeded, malformedRecord, schemaMismatch, …: the data is bad.
        default: dataError
        }
    }
}

/// The command-line option for each library parameter an error can name
/// (`MBDataError.parameter`): the library never names a flag, the command does.
enum OptionNames {
    static let flags: [String: String] = [
        "schema": "--schema",
        "SourceSpec.format": "--format",
        "SourceSpec.sequenceLength": "--seq-len",
        "SourceSpec.tokenByteWidth": "--token-dtype",
        "IngestOptions.rowsPerTransaction": "--batch-rows",
        "IngestOptions.maxRecordBytes": "--max-record-mb",
        "IngestOptions.maxErrors": "--max-errors",
        "IngestOptions.split": "--split",
        "IngestOptions.validationFraction": "--val-fraction",
        "IngestOptions.force": "--force",
        "name": "--name",
        "output": "--name",
        "path": "--out",
    ]

    /// The error's line on stderr: its description, then the flag that sets what it is about.
    static func line(for error: MBDataError) -> String {
        guard let parameter = error.parameter, let flag = flags[parameter] else { return "error: \(error)" }
        let hint = error.code == .limitExceeded ? "raise it with \(flag)" : flag
        return "error: \(error) (\(hint))"
    }
}

/// Runs a command body, turning library errors into one clear line on stderr and the
/// documented exit status.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as MBDataError {
        printError(OptionNames.line(for: error))
        throw ExitCode(ExitStatus.code(for: error))
    }
}

func printError(_ text: String) {
    writeStandardError(text + "\n")
}

/// Writes straight to file descriptor 2 (unbuffered, safe from any thread).
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { return }
        offset += n
    }
}

/// Prints a value as indented JSON with sorted keys on stdout (`--json`).
func printJSON(_ value: some Encodable, snakeCase: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    if snakeCase { encoder.keyEncodingStrategy = .convertToSnakeCase }
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

var standardErrorIsTerminal: Bool { isatty(2) == 1 }
