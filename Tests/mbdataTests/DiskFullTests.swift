import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A small tmpfs mounted for one test, unmounted after it; nil where this process may not
/// mount (not root, or in a container without the capability): those tests then skip.
final class SmallFileSystem {
    let url: URL

    init?(megabytes: Int) {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("mbdata-fs-\(UUID().uuidString)")
        guard getuid() == 0, (try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)) != nil else { return nil }
        guard mount("tmpfs", url.path, "tmpfs", 0, "size=\(megabytes)m") == 0 else {
            try? FileManager.default.removeItem(at: url)
            return nil
        }
    }

    /// Grows the file system, as an operator freeing space would.
    func resize(megabytes: Int) throws {
        guard mount("tmpfs", url.path, "tmpfs", UInt(MS_REMOUNT), "size=\(megabytes)m") == 0 else {
            throw HarnessError("cannot remount \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    deinit {
        _ = umount2(url.path, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(at: url)
    }

    static var unavailable: Bool { SmallFileSystem(megabytes: 1) == nil }
}

/// Every disk can fill up: ingest and shard on a full file system end with the documented
/// exit status and a clear message, leave no half-written file visible, lose nothing
/// already committed, and finish once space is freed.
@Suite("full disk", .serialized, .disabled(if: SmallFileSystem.unavailable, "mounting a tmpfs needs root"))
struct DiskFullTests {
    static let rows = 6_000

    /// `rows` JSON Lines samples of 1 KiB each (float32 values LZ4 cannot shrink), keyed.
    static func source(in directory: TemporaryDirectory) throws -> (source: URL, schema: URL) {
        let schema = directory.file("s.schema.json")
        try directory.write(
            "s.schema.json",
            #"{"name": "full", "key": "id", "fields": [{"name": "id", "dtype": "int64"}, {"name": "x", "dtype": "float32", "shape": [256]}]}"#)
        var text = ""
        for id in 0..<rows {
            let values = (0..<256).map { String(Double((id &* 2_654_435_761 &+ $0 &* 40_503) % 1_000_003) / 7) }.joined(separator: ",")
            text += "{\"id\": \(id), \"x\": [\(values)]}\n"
        }
        try directory.write("s.jsonl", text)
        return (directory.file("s.jsonl"), schema)
    }

    @Test func ingestOnAFullDiskKeepsWholeChunksAndFinishesOnceSpaceIsFreed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let disk = try #require(SmallFileSystem(megabytes: 3))
        let (source, schema) = try Self.source(in: directory)
        let database = disk.file("full.mbdb")
        let arguments = ["ingest", database.path, "--schema", schema.path, "--batch-rows", "500", source.path]

        let full = try await CLI.mbdata(arguments, in: directory)
        #expect(!full.signaled && full.status == 74, "\(full)")
        #expect(full.stderr.contains("error:") && full.stderr.lowercased().contains("full"), "\(full)")
        let kept = try await CLI.sampleCount(database, in: directory)
        #expect(kept < Self.rows && kept % 500 == 0, "\(kept) rows kept")

        try disk.resize(megabytes: 64)
        let finished = try await CLI.mbdata(arguments, in: directory)
        #expect(finished.status == 0, "\(finished)")
        #expect(try await CLI.sampleCount(database, in: directory) == Self.rows)
        #expect(try await CLI.sqlite(database, "select count(distinct id) from samples", in: directory) == "\(Self.rows)")
        let verify = try await CLI.mbdata(["verify", database.path], in: directory)
        #expect(verify.status == 0, "\(verify)")
    }

    @Test func shardOnAFullDiskLeavesNoShardOrManifestVisible() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let disk = try #require(SmallFileSystem(megabytes: 2))
        let (source, schema) = try Self.source(in: directory)
        let database = directory.file("full.mbdb")
        let ingest = try await CLI.mbdata(["ingest", database.path, "--schema", schema.path, source.path], in: directory)
        #expect(ingest.status == 0, "\(ingest)")
        let out = disk.file("shards")
        let arguments = ["shard", database.path, "--out", out.path, "--batch-size", "100", "--epochs", "2", "--shard-mb", "1"]

        let full = try await CLI.mbdata(arguments, in: directory)
        #expect(!full.signaled && full.status == 74, "\(full)")
        #expect(full.stderr.lowercased().contains("space") || full.stderr.lowercased().contains("full"), "\(full)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        #expect(!left.contains("manifest.json"), "\(left)")
        #expect(left.allSatisfy { !$0.hasPrefix(".") && !$0.contains("tmp") }, "temporary files left behind: \(left)")
        let verifyPartial = try await CLI.mbdata(["verify", out.path, "--dataset", database.path], in: directory)
        #expect(!verifyPartial.signaled && verifyPartial.status != 0, "\(verifyPartial)")

        try disk.resize(megabytes: 64)
        let finished = try await CLI.mbdata(arguments, in: directory)
        #expect(finished.status == 0, "\(finished)")
        let verify = try await CLI.mbdata(["verify", out.path, "--dataset", database.path], in: directory)
        #expect(verify.status == 0, "\(verify)")
    }
}
