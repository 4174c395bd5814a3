import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the real, built `mbdata` binary (and `sqlite3`) as child processes, each test in
/// its own temporary directory.

/// What a finished child process left behind.
struct CLIResult: Sendable, CustomStringConvertible {
    /// The exit status, or the signal number when `signaled`.
    var status: Int32
    /// The process ended by a signal (not by exiting).
    var signaled: Bool
    var stdout: String
    var stderr: String
    /// The watchdog had to kill the process.
    var timedOut: Bool

    var description: String {
        "\(signaled ? "signal" : "exit") \(status)\(timedOut ? " (timed out)" : "")\n--- stdout:\n\(stdout)\n--- stderr:\n\(stderr)"
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum CLI {
    /// The package root (…/Tests/mbdataTests/CLIHarness.swift → …).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func sample(_ relativePath: String) -> URL {
        packageRoot.appendingPathComponent("samples").appendingPathComponent(relativePath)
    }

    static let sqlite3Path = "/usr/bin/sqlite3"
    static var hasSQLite3: Bool { FileManager.default.isExecutableFile(atPath: sqlite3Path) }

    /// The `mbdata` executable built beside the test bundle: the directory of the test
    /// runner (and of `Bundle.main`) and their parents are searched. `MBDATA_BINARY`
    /// overrides the search.
    static func binary() throws -> URL {
        let fileManager = FileManager.default
        if let override = ProcessInfo.processInfo.environment["MBDATA_BINARY"], !override.isEmpty {
            guard fileManager.isExecutableFile(atPath: override) else {
                throw HarnessError("MBDATA_BINARY=\(override) is not an executable file")
            }
            return URL(fileURLWithPath: override)
        }
        var starts: [URL] = []
        if let first = CommandLine.arguments.first, !first.isEmpty {
            starts.append(URL(fileURLWithPath: first).resolvingSymlinksInPath().deletingLastPathComponent())
            starts.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        starts.append(Bundle.main.bundleURL)
        starts.append(Bundle.main.bundleURL.resolvingSymlinksInPath())
        starts.append(Bundle.main.bundleURL.deletingLastPathComponent())
        var searched: [String] = []
        for start in starts {
            var directory = start.standardizedFileURL
            for _ in 0..<5 {
                let candidate = directory.appendingPathComponent("mbdata")
                searched.append(candidate.path)
                var isDirectory: ObjCBool = false
                if fileManager.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    fileManager.isExecutableFile(atPath: candidate.path)
                {
                    return candidate
                }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        throw HarnessError(
            "the mbdata executable was not found next to the test bundle; build it with `swift build --build-tests` "
                + "(or set MBDATA_BINARY). Searched: \(searched.joined(separator: ", "))")
    }

    /// Runs `mbdata` with `arguments` and waits for it.
    static func mbdata(_ arguments: [String], in directory: TemporaryDirectory, timeout: Double = 180) async throws -> CLIResult {
        try await run(try binary(), arguments, in: directory, timeout: timeout)
    }

    /// Runs an executable to completion; stdout and stderr go to files (no pipe can fill up),
    /// stdin is /dev/null. A watchdog kills it after `timeout` seconds.
    static func run(_ executable: URL, _ arguments: [String], in directory: TemporaryDirectory, timeout: Double = 180) async throws
        -> CLIResult
    {
        let child = try ChildProcess(executable, arguments, in: directory)
        return try await child.wait(timeout: timeout)
    }

    /// Runs a shell command line (for real pipes: `cat f | mbdata ingest … -`).
    static func shell(_ commandLine: String, in directory: TemporaryDirectory, timeout: Double = 180) async throws -> CLIResult {
        try await run(URL(fileURLWithPath: "/bin/sh"), ["-c", commandLine], in: directory, timeout: timeout)
    }

    /// `sqlite3 DB SQL`; fails the test (throws) unless sqlite3 exits 0.
    static func sqlite(_ database: URL, _ sql: String, in directory: TemporaryDirectory) async throws -> String {
        let result = try await run(URL(fileURLWithPath: sqlite3Path), ["-cmd", ".timeout 10000", database.path, sql], in: directory, timeout: 60)
        guard result.status == 0, !result.signaled else {
            throw HarnessError("sqlite3 \(database.lastPathComponent) '\(sql)' failed: \(result)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The number of rows in `samples`; 0 when the table does not exist yet.
    static func sampleCount(_ database: URL, in directory: TemporaryDirectory) async throws -> Int {
        let exists = try await sqlite(database, "select count(*) from sqlite_master where type = 'table' and name = 'samples'", in: directory)
        guard exists == "1" else { return 0 }
        let text = try await sqlite(database, "select count(*) from samples", in: directory)
        guard let count = Int(text) else { throw HarnessError("sqlite3 printed \(text), not a count") }
        return count
    }

    /// Parses a JSON object printed by `--json`.
    static func jsonObject(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        guard let dictionary = object as? [String: Any] else { throw HarnessError("not a JSON object: \(text)") }
        return dictionary
    }
}

/// A started child process whose stdout/stderr go to files in the test's directory.
final class ChildProcess {
    let pid: Int32
    private let child: SpawnedProcess
    private let stdoutURL: URL
    private let stderrURL: URL

    init(_ executable: URL, _ arguments: [String], in directory: TemporaryDirectory) throws {
        let tag = UUID().uuidString
        stdoutURL = directory.url.appendingPathComponent(".out-\(tag)")
        stderrURL = directory.url.appendingPathComponent(".err-\(tag)")
        child = try SpawnedProcess(executable.path, arguments, directory: directory.url.path, output: stdoutURL.path, errors: stderrURL.path)
        pid = child.pid
    }

    var isRunning: Bool { child.isRunning }

    /// What the child printed on stdout so far.
    var output: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    /// Waits until the child has printed `text` on stdout: true once it has, false when the
    /// child ended without printing it or `timeout` seconds passed.
    func waitForOutput(containing text: String, timeout: Double = 120) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if let out = try? String(contentsOf: stdoutURL, encoding: .utf8), out.contains(text) { return true }
            guard child.isRunning else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// Sends SIGKILL (if it still runs).
    func kill() {
        child.send(SIGKILL)
    }

    /// Waits for the process to end; kills it after `timeout` seconds.
    func wait(timeout: Double = 180) async throws -> CLIResult {
        let child = self.child
        let watchdog = Task {
            try await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
            child.send(SIGKILL)
            return true
        }
        let termination = await child.exited()
        watchdog.cancel()
        let timedOut = (try? await watchdog.value) ?? false
        let out = (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: stdoutURL)
        try? FileManager.default.removeItem(at: stderrURL)
        return CLIResult(status: termination.status, signaled: termination.signaled, stdout: out, stderr: err, timedOut: timedOut)
    }
}

/// Quotes a path for /bin/sh.
func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
