import Foundation
import MBDataTestSupport
import Testing

extension CLI {
    /// The example trainer built beside `mbdata`, and the digits ingested into `directory`
    /// with a 20% validation split, as the trainer's tests start.
    static func digitsTrainer(in directory: TemporaryDirectory) async throws -> (trainer: URL, dataset: URL) {
        let trainer = try binary().deletingLastPathComponent().appendingPathComponent("digits-trainer")
        try #require(FileManager.default.isExecutableFile(atPath: trainer.path), "digits-trainer is built beside mbdata")
        let dataset = directory.file("digits.mbdb")
        let ingest = try await mbdata(
            ["ingest", dataset.path, "--schema", sample("digits/digits.schema.json").path, "--val-fraction", "0.2",
             sample("digits/digits.jsonl").path], in: directory)
        try #require(ingest.status == 0, "\(ingest)")
        return (trainer, dataset)
    }
}
