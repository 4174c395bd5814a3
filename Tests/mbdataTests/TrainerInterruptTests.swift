import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The Swift example trainer under Ctrl-C: SIGINT leaves a valid checkpoint (with the model)
/// and the next run resumes with exactly the batches that had not finished.
@Suite("SIGINT in the example trainer")
struct TrainerInterruptTests {
    @Test("SIGINT saves the loader checkpoint; the next run resumes and still reaches 90%")
    func interruptAndResume() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (trainer, db) = try await CLI.digitsTrainer(in: dir)
        let state = dir.file("state.json")

        let child = try ChildProcess(trainer, [db.path, state.path], in: dir)
        // Interrupt once the first step is done: the handler is installed and batches have finished.
        let training = try await child.waitForOutput(containing: "training: the first step is done")
        #expect(training, "the trainer announces its first step")
        #expect(child.isRunning, "training should still run when interrupted (make the run longer if not)")
        kill(child.pid, SIGINT)
        let interrupted = try await child.wait(timeout: 60)
        #expect(interrupted.status == 130 && !interrupted.signaled, "\(interrupted)")
        #expect(interrupted.stdout.contains("state saved"), "\(interrupted.stdout)")
        let saved = try CLI.jsonObject(String(decoding: try Data(contentsOf: state), as: UTF8.self))
        let checkpoint = try #require(saved["checkpoint"] as? [String: Any])
        #expect(checkpoint["batchesPerEpoch"] as? Int == 45)

        let resumed = try await CLI.run(trainer, [db.path, state.path], in: dir, timeout: 120)
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stdout.contains("resuming:") && !resumed.stdout.contains("resuming: 0 "), "\(resumed.stdout)")
        #expect(resumed.stdout.contains("held-out accuracy"), "\(resumed.stdout)")
        #expect(!FileManager.default.fileExists(atPath: state.path), "a finished run removes its state")
    }
}
