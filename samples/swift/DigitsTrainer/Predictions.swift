// `--predict OUTPUT`: the trained model's predictions for the `val` split, written into the
// dataset file through InferenceJob (k = 4 concurrent calls), exactly once per sample. A run
// killed part-way is finished by the next one, which runs only the batches without outputs.
import Foundation
import MBData

/// The trained weights as an inference model: a predicted class and the class probabilities.
struct SoftmaxPredictor: InferenceModel {
    let weights: [Float]
    let bias: [Float]
    /// Extra time per call (`--model-delay-ms`): a slow model, so a run can be killed mid-way.
    let delay: Duration

    func infer(_ batch: Batch, context: TrainingContext) async throws -> [String: Tensor] {
        if delay > .zero { try await Task.sleep(for: delay) }
        let pixels = batch["image"]!.floats().map { $0 / 16 }
        let rows = batch.rowCount
        var predictions: [Int64] = []
        var probabilities: [Float] = []
        for row in 0..<rows {
            let p = SoftmaxModel.probabilities(pixels[(row * 64)..<((row + 1) * 64)], weights, bias)
            predictions.append(Int64(p.firstIndex(of: p.max()!)!))
            probabilities += p
        }
        return [
            "pred": try Tensor(name: "pred", shape: [rows], values: predictions),
            "prob": try Tensor(name: "prob", shape: [rows, SoftmaxModel.classes], values: probabilities),
        ]
    }
}

enum Predictions {
    /// `pred` int64 and `prob` float32[10] per sample.
    static let schema = try! Schema(
        name: "digit-predictions",
        fields: [Field(name: "pred", dtype: .int64), Field(name: "prob", dtype: .float32, shape: [SoftmaxModel.classes])])

    /// Writes the predictions of the `val` split into `output` (created if missing) and prints
    /// what this run committed, the coverage and the accuracy from an SQL join.
    static func write(_ output: String, dataset: Dataset, weights: [Float], bias: [Float], delay: Duration) async throws {
        if try await !dataset.outputs().contains(where: { $0.name == output }) {
            try await dataset.createOutput(output, schema: schema)
        }
        var config = InferenceJob.configuration(batchSize: 32, split: "val")
        config.concurrency = 4
        let job = try await InferenceJob(dataset: dataset, output: output, configuration: config)
        let before = try await job.progress()
        try await job.run(model: SoftmaxPredictor(weights: weights, bias: bias, delay: delay))
        let after = try await job.progress()
        print("predictions: this run committed \(after.finished - before.finished) of \(after.total) batches (\(before.finished) were already committed)")
        for coverage in try await dataset.outputCoverage(output) where coverage.expected > 0 {
            print("coverage of \(output): split \(coverage.split) \(coverage.written)/\(coverage.expected) samples")
        }
        let agreement = try await dataset.outputAgreement(output, field: "pred", sampleField: "label", split: "val")
        print(
            String(
                format: "accuracy from the SQL join of samples and outputs_%@: %.1f%% (%d/%d)", output, agreement.fraction * 100,
                agreement.matching, agreement.rows))
    }
}
