import Foundation
import GRDB
import Testing

@testable import MBData

/// A dataset on a read-only mount (a bind mount remounted read-only, as an NFS export or a
/// container volume would be) reads as on writable storage, refuses writes by name and
/// leaves no file beside it. Needs `mount`, so it runs where the tests run as root.
@Suite(.enabled(if: ReadOnlyMount.available, "needs root to bind-mount a folder read-only")) struct ReadOnlyStorageTests {
    static let values = """
        {"name": "v", "fields": [{"name": "value", "dtype": "int64"}, {"name": "vec", "dtype": "float32", "shape": [4]}]}
        """

    @Test func aDatasetOnReadOnlyStorageReadsAsItDoesElsewhereAndRefusesWrites() async throws {
        let dir = try TemporaryDirectory()
        let lines = (0..<300).map { #"{"value": \#($0), "vec": [\#($0), 1, 2, 3]}"# }
        let source = try dir.write("v.jsonl", lines.joined(separator: "\n") + "\n")
        try FileManager.default.createDirectory(atPath: dir.path("data"), withIntermediateDirectories: true)
        let writablePath = dir.path("data/v.mbdb")
        var configuration = MultiBatchLoader.Configuration(batchSize: 32, seed: 3, epochs: 0..<2)
        configuration.concurrency = 2
        let expected: [PlanItem: [UInt8]]
        do {
            let dataset = try Dataset(path: writablePath, create: true)
            try await ingest(dataset, [source], schema: try schema(Self.values))
            let recorder = BatchRecorder()
            try await MultiBatchLoader(dataset: dataset, configuration: configuration).run(trainer: recorder)
            expected = await recorder.bytes
            #expect(!dataset.isReadOnly)
            // What a copy to read-only storage holds: every commit folded into the file.
            try await dataset.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
        #expect(expected.count == 18)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path("data")).sorted()
        let before = try Data(contentsOf: URL(fileURLWithPath: writablePath))

        let mount = try ReadOnlyMount(dir.path("data"), at: dir.path("readonly"))
        defer { mount.unmount() }
        let path = dir.path("readonly/v.mbdb")
        do {
            let dataset = try Dataset(path: path)
            #expect(dataset.isReadOnly)
            let info = try await dataset.info()
            #expect(info.sampleCount == 300 && info.readOnly)
            let recorder = BatchRecorder()
            try await MultiBatchLoader(dataset: dataset, configuration: configuration).run(trainer: recorder)
            #expect(await recorder.bytes == expected, "the same batches as from writable storage")
            let more = try dir.write("more.jsonl", #"{"value": 1000, "vec": [0, 0, 0, 0]}"# + "\n")
            let refused = await ingestError(dataset, [more])
            #expect(refused?.matches(.storage, "read-only storage", path) == true, "\(String(describing: refused))")
            await #expect(performing: { try await dataset.createOutput("preds", schema: try schema(Self.values)) }, throws: { error in
                (error as? MBDataError)?.matches(.storage, "read-only storage") == true
            })
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path("data")).sorted() == files, "no file made beside it")
        #expect(try Data(contentsOf: URL(fileURLWithPath: writablePath)) == before, "not a byte of it written")

        #expect(performing: { try Dataset(path: dir.path("readonly/new.mbdb"), create: true) }, throws: { error in
            (error as? MBDataError)?.matches(.storage, "cannot create a dataset here", "read-only storage") == true
        })

        // A log beside the file holds commits the file lacks: refused, not silently left out.
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: writablePath + "-wal"))
        #expect(performing: { try Dataset(path: path) }, throws: { error in
            (error as? MBDataError)?.matches(.invalidDataset, "write-ahead log", "v.mbdb-wal") == true
        })
        // Unmounted before the folder is removed (the folder stays referenced until then).
        mount.unmount()
        dir.remove()
    }
}

/// A folder bind-mounted read-only elsewhere, until ``unmount()``.
struct ReadOnlyMount {
    let target: String

    /// Whether this process may mount (root with the capability): tried once on a scratch folder.
    static let available: Bool = {
        guard getuid() == 0, let dir = try? TemporaryDirectory("ReadOnlyMountProbe") else { return false }
        try? FileManager.default.createDirectory(atPath: dir.path("a"), withIntermediateDirectories: true)
        guard let mount = try? ReadOnlyMount(dir.path("a"), at: dir.path("b")) else { return false }
        mount.unmount()
        return true
    }()

    init(_ source: String, at target: String) throws {
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        self.target = target
        try Self.run(["mount", "--bind", source, target])
        do {
            try Self.run(["mount", "-o", "remount,ro,bind", target])
        } catch {
            unmount()
            throw error
        }
    }

    func unmount() {
        try? Self.run(["umount", target])
    }

    private static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw MBDataError(.unavailable, "\(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }
}
