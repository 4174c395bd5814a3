import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A test run killed before it stops its PostgreSQL servers (a SIGKILL, a `timeout`) must
/// not leave them running: the next server a test starts stops and removes them.
@Suite(.enabled(if: PostgresServer.isAvailable, Comment(rawValue: PostgresServer.unavailableReason)))
struct PostgresServerCleanupTests {
    /// Set in the environment of the child process ``aServerStartedBySIGKILLedProcessIsStoppedAndRemovedByTheNextStart()``
    /// runs; only there does ``childStartsAServerAndWaitsToBeKilled()`` run.
    static let childVariable = "MBDATA_TEST_POSTGRES_CHILD"
    /// What the child prints, then the server's folder and pid, once its server runs.
    static let childMarker = "postgres-server-started"

    @Test func aServerStartedBySIGKILLedProcessIsStoppedAndRemovedByTheNextStart() async throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["--testing-library", "swift-testing", "--filter", "childStartsAServerAndWaitsToBeKilled"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childVariable: "1"]) { $1 }
        let output = Pipe()
        // Never written: the child waits on it, and ends by itself if this process dies first.
        let input = Pipe()
        child.standardOutput = output
        child.standardInput = input
        try child.run()
        let reported = await Self.line(startingWith: Self.childMarker, from: output.fileHandleForReading)
        kill(child.processIdentifier, SIGKILL)
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                child.waitUntilExit()
                continuation.resume()
            }
        }
        let fields = try #require(reported?.split(separator: " "), "the child did not report its server")
        let (folder, postmaster) = (String(fields[1]), try #require(pid_t(fields[2])))
        #expect(child.terminationReason == .uncaughtSignal)
        // Whether the server still runs now is not checked: a test running beside this one
        // may start a server of its own, and so remove it, first.

        try await PostgresServer.with { server in
            #expect(!FileManager.default.fileExists(atPath: folder), "the abandoned server's folder is still there")
            #expect(!PostgresServer.isRunning(postmaster), "the abandoned server still runs")
            #expect(FileManager.default.fileExists(atPath: server.folder), "the new server's own folder is gone")
        }
    }

    /// A server this process's own live tests run is never taken for an abandoned one.
    @Test func aLiveProcessServerIsLeftAlone() async throws {
        try await PostgresServer.with { server in
            let removed = await PostgresServer.removeAbandonedServers()
            #expect(!removed.contains(server.folder))
            #expect(server.processID.map(PostgresServer.isRunning) == true)
        }
    }

    /// The child's part: starts a server, reports it, and waits to be killed — it never
    /// reaches ``PostgresServer/with(_:)``'s stop unless its parent dies first.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[childVariable] != nil, "runs only as the child process of the test above"))
    func childStartsAServerAndWaitsToBeKilled() async throws {
        try await PostgresServer.with { server in
            let pid = try #require(server.processID)
            FileHandle.standardOutput.write(Data("\(Self.childMarker) \(server.folder) \(pid)\n".utf8))
            await Self.untilEndOfInput()
        }
    }

    // MARK: - Helpers

    /// The first line of `handle` that starts with `prefix`, read on a thread of its own; nil
    /// when the output ends first.
    static func line(startingWith prefix: String, from handle: FileHandle) async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var pending = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { return continuation.resume(returning: nil) }
                    pending.append(chunk)
                    let lines = String(decoding: pending, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                    if let found = lines.dropLast().first(where: { $0.hasPrefix(prefix) }) { return continuation.resume(returning: String(found)) }
                }
            }
        }
    }

    /// Returns once standard input ends, read on a thread of its own.
    static func untilEndOfInput() async {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                _ = FileHandle.standardInput.readDataToEndOfFile()
                continuation.resume()
            }
        }
    }
}
