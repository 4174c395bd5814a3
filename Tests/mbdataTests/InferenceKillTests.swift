import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The Swift digits sample writing its predictions through InferenceJob, killed with
/// SIGKILL once some batches are committed: the next run finishes only the remaining
/// batches, and every validation sample ends with exactly one output row.
@Suite("SIGKILL during in-process inference")
struct InferenceKillTests {
    @Test("kill -9 mid-predictions, re-run: only the remaining batches, one row per val sample", .enabled(if: CLI.hasSQLite3))
    func killAndRerun() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (trainer, db) = try await CLI.digitsTrainer(in: dir)
        let state = dir.file("state.json")
        let valCount = try #require(Int(try await CLI.sqlite(db, "select count(*) from samples where _split = 'val'", in: dir)))
        let total = (valCount + 31) / 32

        // A slow model: 4 calls of 5 s at a time, 3 rounds for the 11 batches of val, so the
        // kill lands 10 s before the last commit even when polling is slow on a loaded machine
        // (with 2 s calls, a run beside the whole suite once finished before a poll saw a commit).
        let child = try ChildProcess(trainer, [db.path, state.path, "--predict", "preds", "--model-delay-ms", "5000"], in: dir)
        var committed = 0
        while child.isRunning, committed == 0 {
            try await Task.sleep(for: .milliseconds(20))
            committed = await Self.committedBatches(db, in: dir)
        }
        child.kill()
        let killed = try await child.wait(timeout: 60)
        try #require(killed.signaled && killed.status == SIGKILL, "killed while predicting: \(killed)")
        let atKill = await Self.committedBatches(db, in: dir)
        try #require(atKill > 0 && atKill < total, "\(atKill) of \(total) batches committed when killed")
        let rowsAtKill = try await CLI.sqlite(db, "select count(*) from outputs_preds", in: dir)
        let verify = try await CLI.mbdata(["verify", db.path], in: dir)
        #expect(verify.status == 0, "the file verifies after the kill: \(verify)")

        let rerun = try await CLI.run(trainer, [db.path, state.path, "--predict", "preds"], in: dir, timeout: 180)
        #expect(rerun.status == 0, "\(rerun)")
        #expect(
            rerun.stdout.contains("predictions: this run committed \(total - atKill) of \(total) batches (\(atKill) were already committed)"),
            "the re-run did only the remaining batches: \(rerun.stdout)")
        #expect(rerun.stdout.contains("coverage of preds: split val \(valCount)/\(valCount) samples"), "\(rerun.stdout)")
        #expect(rerun.stdout.contains("accuracy from the SQL join"), "\(rerun.stdout)")

        let shape = try await CLI.sqlite(
            db, "select count(*), count(distinct o._id), sum(s._split = 'val') from outputs_preds o left join samples s using (_id)", in: dir)
        #expect(shape == "\(valCount)|\(valCount)|\(valCount)", "rows|distinct ids|of val samples = \(shape) (\(rowsAtKill) rows at the kill)")
        #expect(await Self.committedBatches(db, in: dir) == total)
    }

    /// Rows of `mbdata_output_batches` as a concurrent reader sees them; 0 before there are any.
    static func committedBatches(_ db: URL, in dir: TemporaryDirectory) async -> Int {
        guard
            let result = try? await CLI.run(
                URL(fileURLWithPath: CLI.sqlite3Path), ["-cmd", ".timeout 5000", db.path, "select count(*) from mbdata_output_batches"], in: dir,
                timeout: 60),
            result.status == 0
        else { return 0 }
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
