import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `mbdata ingest` killed with SIGKILL at several points: the dataset must stay valid with
/// only whole chunks committed, and re-running the same command must finish the job with
/// every record exactly once — with a key, and without one (where only the ingest log's
/// resume point prevents duplicates).
@Suite("SIGKILL during ingest")
struct IngestKillTests {
    static let total = 40_000
    static let batchRows = 2_000

    enum Variant: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case keyed, keyless
        var testDescription: String { rawValue }

        var schemaJSON: String {
            let key = self == .keyed ? "\"key\": \"id\", " : ""
            return """
                {"name": "kill_\(rawValue)", \(key)"fields": [
                  {"name": "id", "dtype": "int64"},
                  {"name": "features", "dtype": "float32", "shape": [16]}
                ]}
                """
        }
    }

    enum KillPoint: CustomStringConvertible {
        /// After a fixed delay from the start of the process.
        case afterSeconds(Double)
        /// As soon as at least this many committed rows are visible to a reader.
        case afterRows(Int)

        var description: String {
            switch self {
            case .afterSeconds(let s): String(format: "%.2f s after start", s)
            case .afterRows(let n): "once ≥ \(n) rows are committed"
            }
        }
    }

    /// Each plan runs on a fresh dataset: one kill per entry (each on a new run of the same
    /// command, so later kills hit a resumed ingest), then a run to completion.
    static let plans: [(name: String, kills: [KillPoint])] = [
        ("early", [.afterSeconds(0.05)]),
        ("first commit", [.afterRows(1)]),
        ("mid-way", [.afterRows(total / 2)]),
        ("random delay", [.afterSeconds(Double.random(in: 0.1...1.0))]),
        ("twice: ¼, then ¾ during the resumed run", [.afterRows(total / 4), .afterRows(3 * total / 4)]),
    ]

    /// JSONL of `total` records, ids 0..<total in order, 16 small decimals each.
    static func makeData() -> String {
        var text = ""
        text.reserveCapacity(total * 120)
        for i in 0..<total {
            text += "{\"id\": \(i), \"features\": ["
            for j in 0..<16 {
                if j > 0 { text += ", " }
                text += "\((i + j) % 19 - 9).\((i &* 7 + j) % 100)"
            }
            text += "]}\n"
        }
        return text
    }

    @Test("kill -9 mid-ingest, verify, resume: every record exactly once", .enabled(if: CLI.hasSQLite3), arguments: Variant.allCases)
    func killAndResume(variant: Variant) async throws {
        let started = Date()
        let dir = try TemporaryDirectory("kill-\(variant.rawValue)")
        defer { dir.remove() }
        let schema = try dir.write("\(variant.rawValue).schema.json", variant.schemaJSON)
        let data = try dir.write("data.jsonl", Self.makeData())
        let binary = try CLI.binary()

        var midIngestKills = 0
        var notes: [String] = []
        for (planIndex, plan) in Self.plans.enumerated() {
            let db = dir.file("plan\(planIndex).mbdb")
            let arguments = ["ingest", db.path, "--schema", schema, data, "--batch-rows", String(Self.batchRows)]
            var committed = 0
            for (killIndex, point) in plan.kills.enumerated() {
                let child = try ChildProcess(binary, arguments, in: dir)
                switch point {
                case .afterSeconds(let seconds):
                    try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                case .afterRows(let rows):
                    while child.isRunning {
                        if FileManager.default.fileExists(atPath: db.path), await Self.pollCount(db, in: dir) >= rows { break }
                        try await Task.sleep(nanoseconds: 25_000_000)
                    }
                }
                child.kill()
                let result = try await child.wait(timeout: 120)
                let killed = result.signaled && result.status == SIGKILL
                if !killed {
                    // It finished before the kill: that run must simply have succeeded.
                    #expect(result.status == 0, "[\(variant) \(plan.name)] ingest ended on its own but failed: \(result)")
                }

                let label = "[\(variant) \(plan.name) kill \(killIndex + 1) \(point)]"
                committed = try await checkAfterKill(db, label: label, in: dir)
                let landed: String
                if !killed {
                    landed = "AFTER COMPLETION (process exited \(result.status))"
                } else if !FileManager.default.fileExists(atPath: db.path) {
                    landed = "before the dataset file existed"
                } else if committed == 0 {
                    landed = "before the first commit"
                } else if committed < Self.total {
                    landed = "mid-ingest"
                    midIngestKills += 1
                } else {
                    landed = "after the last commit"
                }
                notes.append("\(label): SIGKILL landed \(landed); \(committed)/\(Self.total) rows committed")
            }

            // Re-run the same command: it continues after the last committed record.
            let resume = try await CLI.mbdata(arguments, in: dir, timeout: 180)
            #expect(resume.status == 0 && !resume.signaled, "[\(variant) \(plan.name)] resumed ingest: \(resume)")
            if committed > 0 && committed < Self.total {
                #expect(
                    resume.stderr.contains("continued interrupted ingest"),
                    "[\(variant) \(plan.name)] the re-run should say it continued the killed ingest: \(resume.stderr)")
                #expect(
                    resume.stderr.contains("\(Self.total - committed) rows added"),
                    "[\(variant) \(plan.name)] the re-run should add exactly the \(Self.total - committed) missing rows: \(resume.stderr)")
            }
            try await checkComplete(db, label: "[\(variant) \(plan.name)]", in: dir)

            // Once complete, the same command adds nothing.
            let again = try await CLI.mbdata(arguments, in: dir)
            #expect(again.status == 0 && again.stderr.contains("0 rows added"), "[\(variant) \(plan.name)] third run: \(again)")
            #expect(try await CLI.sampleCount(db, in: dir) == Self.total)
            try? FileManager.default.removeItem(at: db)
        }
        for note in notes { print(note) }
        print("[\(variant)] \(midIngestKills) kills landed mid-ingest; \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        #expect(midIngestKills >= 2, "too few kills landed mid-ingest for the test to mean anything:\n\(notes.joined(separator: "\n"))")
    }

    /// Committed rows as a concurrent reader sees them; 0 while there is no table yet.
    static func pollCount(_ db: URL, in dir: TemporaryDirectory) async -> Int {
        guard let result = try? await CLI.run(URL(fileURLWithPath: CLI.sqlite3Path), ["-cmd", ".timeout 5000", db.path, "select count(*) from samples"], in: dir, timeout: 60),
            result.status == 0
        else { return 0 }
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// After a kill: the dataset verifies, and holds whole chunks only — a prefix of the source.
    func checkAfterKill(_ db: URL, label: String, in dir: TemporaryDirectory) async throws -> Int {
        guard FileManager.default.fileExists(atPath: db.path) else { return 0 }
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0 && !verify.signaled, "\(label) verify after the kill: \(verify)")
        let count = try await CLI.sampleCount(db, in: dir)
        #expect(
            count % Self.batchRows == 0 || count == Self.total,
            "\(label) \(count) rows committed: not a whole number of \(Self.batchRows)-record chunks")
        if count > 0 {
            let shape = try await CLI.sqlite(db, "select count(*), count(distinct id), min(id), max(id) from samples", in: dir)
            #expect(shape == "\(count)|\(count)|0|\(count - 1)", "\(label) committed rows are not the first \(count) records: \(shape)")
        }
        let info = try await CLI.mbdata(["inspect", "--json", db.path], in: dir)
        #expect(info.status == 0, "\(label) inspect after the kill: \(info)")
        if info.status == 0 {
            #expect(try CLI.jsonObject(info.stdout)["sampleCount"] as? Int == count, "\(label) inspect disagrees with sqlite3")
        }
        return count
    }

    /// After the final run: all records exactly once, a valid dataset, a complete log entry.
    func checkComplete(_ db: URL, label: String, in dir: TemporaryDirectory) async throws {
        let shape = try await CLI.sqlite(db, "select count(*), count(distinct id), min(id), max(id) from samples", in: dir)
        #expect(shape == "\(Self.total)|\(Self.total)|0|\(Self.total - 1)", "\(label) after the resumed ingest: count|distinct|min|max = \(shape)")
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "\(label) verify after the resumed ingest: \(verify)")
        let inspect = try await CLI.mbdata(["inspect", "--json", db.path], in: dir)
        #expect(inspect.status == 0, "\(label) inspect: \(inspect)")
        let info = try CLI.jsonObject(inspect.stdout)
        #expect(info["sampleCount"] as? Int == Self.total)
        let ingests = info["ingests"] as? [[String: Any]] ?? []
        #expect(ingests.last?["status"] as? String == "complete", "\(label) last ingest log entry: \(ingests.last ?? [:])")
        #expect(ingests.dropLast().allSatisfy { $0["status"] as? String != "complete" }, "\(label) only the last run completed: \(ingests)")
        let added = ingests.reduce(0) { $0 + ($1["rowsAdded"] as? Int ?? 0) }
        #expect(added == Self.total, "\(label) the ingest log's rows added sum to \(added)")
    }
}
