import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The short version of `make reproducibility`: the digits sample in synchronous mode (k = 4,
/// 2 epochs) ends with the same weight bits whatever order its consumers finish in, and
/// whatever SIGKILL interrupts it, once resumed from its state file.
@Suite("Reproducible training in the example trainer")
struct ReproducibilityTests {
    private static let shortRun = ["--epochs", "2"]

    @Test("Consumers finishing in different orders give bitwise-identical weights")
    func timingDoesNotChangeTheWeights() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (trainer, db) = try await CLI.digitsTrainer(in: dir)
        var weights: [Data] = []
        for seed in ["1", "2"] {
            let file = dir.file("weights-\(seed).bin")
            let run = try await CLI.run(
                trainer, [db.path, dir.file("state-\(seed).json").path, "--jitter-ms", "8", "--jitter-seed", seed, "--save-weights", file.path]
                    + Self.shortRun, in: dir, timeout: 180)
            #expect(run.status == 0 && !run.signaled, "\(run)")
            // The delays must really reorder the calls, or the comparison shows nothing.
            let reordered = try #require(run.stdout.firstMatch(of: /(\d+) of them had their gradients arrive out of slot order/))
            #expect(Int(reordered.1)! > 0, "\(run.stdout)")
            weights.append(try Data(contentsOf: file))
        }
        #expect(weights[0].count == (640 + 10) * 4)
        #expect(weights[0] == weights[1], "the same plan, other finishing orders: the same bits")
    }

    @Test("SIGKILL mid-step, then resume from the state file: the uninterrupted run's bits")
    func killAndResumeDoesNotChangeTheWeights() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (trainer, db) = try await CLI.digitsTrainer(in: dir)
        let reference = dir.file("reference.bin")
        let uninterrupted = try await CLI.run(
            trainer, [db.path, dir.file("reference.json").path, "--save-weights", reference.path] + Self.shortRun, in: dir, timeout: 180)
        #expect(uninterrupted.status == 0 && !uninterrupted.signaled, "\(uninterrupted)")

        let state = dir.file("state.json")
        let resumedWeights = dir.file("resumed.bin")
        let arguments = [db.path, state.path, "--save-every", "3", "--save-weights", resumedWeights.path] + Self.shortRun
        // Step 13 of 23 (mid-epoch 1), after slot 2 handed in its gradient; the last save followed step 11.
        let killed = try await CLI.run(trainer, arguments + ["--kill-at", "13:2", "--jitter-ms", "4"], in: dir, timeout: 180)
        #expect(killed.signaled && killed.status == SIGKILL, "\(killed)")
        #expect(!FileManager.default.fileExists(atPath: resumedWeights.path))

        let resumed = try await CLI.run(trainer, arguments, in: dir, timeout: 180)
        #expect(resumed.status == 0 && !resumed.signaled, "\(resumed)")
        #expect(resumed.stdout.contains("resuming: 48 batches already finished"), "\(resumed.stdout)")
        #expect(try Data(contentsOf: resumedWeights) == Data(contentsOf: reference), "killed and resumed: the uninterrupted run's bits")
    }
}
