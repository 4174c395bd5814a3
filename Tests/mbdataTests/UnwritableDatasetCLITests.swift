import Foundation
import MBDataTestSupport
import Testing

/// A dataset in a folder another user owns (a shared dataset folder): a user who may read
/// but not write it runs the read-only commands, and a write is refused by name.
@Suite(.enabled(if: OtherUser.canRunMBData, "needs root, runuser and an mbdata binary the nobody user may run"))
struct UnwritableDatasetCLITests {
    @Test("a dataset this user may read but not write: inspect, verify and shard read it as it is; ingest is refused")
    func anotherUsersDataset() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let data = dir.file("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let db = data.appendingPathComponent("digits.mbdb")
        let ingest = try await CLI.mbdata(
            ["ingest", db.path, "--schema", CLI.sample("digits/digits.schema.json").path, CLI.sample("digits/digits.jsonl").path], in: dir)
        #expect(ingest.status == 0, "\(ingest)")
        let listing = try FileManager.default.contentsOfDirectory(atPath: data.path).sorted()
        let bytes = try Data(contentsOf: db)
        let out = dir.file("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: out.path)

        let inspect = try await OtherUser.mbdata(["inspect", db.path], in: dir)
        #expect(inspect.status == 0 && inspect.stdout.contains("samples  1797") && inspect.stdout.contains("not writable here"), "\(inspect)")
        let verify = try await OtherUser.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "\(verify)")
        let shard = try await OtherUser.mbdata(["shard", db.path, "--out", out.appendingPathComponent("set").path, "--batch-size", "64", "--seed", "1"], in: dir)
        #expect(shard.status == 0, "\(shard)")
        let refused = try await OtherUser.mbdata(["ingest", db.path, CLI.sample("digits/digits.jsonl").path, "--force"], in: dir)
        #expect(refused.status == 74 && refused.stderr.contains("not writable to this user"), "\(refused)")

        #expect(try FileManager.default.contentsOfDirectory(atPath: data.path).sorted() == listing, "no file made beside it")
        #expect(try Data(contentsOf: db) == bytes, "not a byte of it written")
    }
}

/// Runs `mbdata` as the `nobody` user (`runuser`, so only where the tests run as root).
enum OtherUser {
    static let runuser = URL(fileURLWithPath: "/usr/sbin/runuser")

    /// Whether `nobody` can run the built binary here (root, runuser, and every folder above
    /// the binary open to other users).
    static let canRunMBData: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: runuser.path), let binary = try? CLI.binary(),
            let dir = try? TemporaryDirectory("OtherUserProbe")
        else { return false }
        let semaphore = DispatchSemaphore(value: 0)
        let process = Process()
        process.executableURL = runuser
        process.arguments = ["-u", "nobody", "--", binary.path, "--help"]
        process.currentDirectoryURL = dir.url
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.terminationHandler = { _ in semaphore.signal() }
        guard (try? process.run()) != nil else { return false }
        semaphore.wait()
        return process.terminationStatus == 0
    }()

    static func mbdata(_ arguments: [String], in directory: TemporaryDirectory) async throws -> CLIResult {
        try await CLI.run(runuser, ["-u", "nobody", "--", try CLI.binary().path] + arguments, in: directory)
    }
}
