import Foundation
import MBDataTestSupport
import Testing

/// The example trainer stopping itself: `--max-steps N` calls `context.stop()` at global
/// step N-1; the synchronous step completes, the state is saved, and the next run resumes
/// with the step count going on.
@Suite struct TrainerStopTests {
    @Test func maxStepsStopsFromInsideTheTrainerAtAStepBoundaryAndResumes() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (trainer, db) = try await CLI.digitsTrainer(in: dir)
        let state = dir.file("state.json")

        let stopped = try await CLI.run(trainer, [db.path, state.path, "--max-steps", "20"], in: dir, timeout: 120)
        #expect(stopped.status == 0, "\(stopped)")
        // 4 synchronous consumers: steps 0…19 are 80 whole batches, none of step 20.
        #expect(stopped.stdout.contains("stopped at step 20 after 80 finished batches"), "\(stopped.stdout)")
        let saved = try CLI.jsonObject(String(decoding: try Data(contentsOf: state), as: UTF8.self))
        #expect((saved["checkpoint"] as? [String: Any])?["completedEpochs"] as? Int == 1, "45 batches an epoch: one complete")

        let resumed = try await CLI.run(trainer, [db.path, state.path], in: dir, timeout: 120)
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stdout.contains("resuming: 80 batches already finished"), "\(resumed.stdout)")
        #expect(resumed.stdout.contains("step 100:"), "the global step goes on after the resume: \(resumed.stdout)")
        #expect(!resumed.stdout.contains("step 0:"), "\(resumed.stdout)")
        #expect(resumed.stdout.contains("held-out accuracy"), "\(resumed.stdout)")
    }
}
