// The in-process side of the inference benchmark (Benchmarks/inference/run.sh drives it):
//
//   mbdata-infer-bench reset DB OUTPUT SCHEMA.json   drops the output if it exists, creates it
//   mbdata-infer-bench infer DB OUTPUT K BATCH       InferenceJob over every sample, a do-nothing
//                                                    model, K concurrent calls
//   mbdata-infer-bench read DB K BATCH [train]       the same loop without writing: the job's plan
//                                                    (no shuffle, tail padded), or with `train`
//                                                    training's (shuffled, seed 7, tail dropped)
//
// `infer` and `read` set up (dataset, job, loader), print `READY {}`, wait for `go` on stdin,
// run, and print `RESULT {json}` (rows, batches, seconds), as every measured process of the
// benchmark does.
import Foundation
import MBData

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("mbdata-infer-bench: \(message)\n".utf8))
    exit(2)
}

func argument(_ index: Int) -> String {
    let arguments = CommandLine.arguments
    guard index < arguments.count else {
        fail("usage: reset DB OUTPUT SCHEMA.json | infer DB OUTPUT K BATCH | read DB K BATCH [train]")
    }
    return arguments[index]
}

func number(_ index: Int) -> Int {
    guard let value = Int(argument(index)), value > 0 else { fail("argument \(index) must be a positive integer") }
    return value
}

/// One line to the driver, written at once (stdout is a pipe, so print would buffer it).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Tells the driver that set-up is done and waits for its `go`; returns the start time.
func waitForGo() -> ContinuousClock.Instant {
    emit("READY {}")
    guard readLine()?.trimmingCharacters(in: .whitespaces) == "go" else { fail("expected go on stdin") }
    return .now
}

func report(rows: Int, batches: Int, since start: ContinuousClock.Instant, extra: [String: Any] = [:]) throws {
    let seconds = (ContinuousClock.now - start) / .seconds(1)
    var result: [String: Any] = ["rows": rows, "batches": batches, "seconds": seconds]
    result.merge(extra) { _, new in new }
    let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    emit("RESULT " + String(decoding: json, as: UTF8.self))
}

// The same choice `mbdata serve` makes: batch buffers reuse their pages (AllocatorTuning).
AllocatorTuning.applyForBatchWorkloads()
do {
    let dataset = try Dataset(path: argument(2))
    switch argument(1) {
    case "reset":
        let output = argument(3)
        if try await dataset.outputs().contains(where: { $0.name == output }) {
            try await dataset.dropOutput(output)
        }
        try await dataset.createOutput(output, schema: Schema(contentsOf: argument(4)))
    case "infer":
        let concurrency = number(4)
        var configuration = InferenceJob.configuration(batchSize: number(5), split: nil)
        configuration.concurrency = concurrency
        let job = try await InferenceJob(dataset: dataset, output: argument(3), configuration: configuration)
        let model = PrecomputedModel(schema: job.job.schema, batchSize: configuration.plan.batchSize)
        let before = try await job.progress()
        let start = waitForGo()
        try await job.run(model: model)
        let after = try await job.progress()
        try report(
            rows: model.rows.value, batches: after.finished - before.finished, since: start,
            extra: ["k": concurrency, "finished": after.finished, "total": after.total])
    case "read":
        let concurrency = number(3)
        let batchSize = number(4)
        var configuration =
            CommandLine.arguments.count > 5 && argument(5) == "train"
            ? MultiBatchLoader.Configuration(plan: PlanParameters(seed: 7, batchSize: batchSize, tail: .drop, shuffle: true), epochs: 0..<1)
            : InferenceJob.configuration(batchSize: batchSize, split: nil)
        configuration.concurrency = concurrency
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: configuration)
        let trainer = CountingTrainer()
        let start = waitForGo()
        try await loader.run(trainer: trainer)
        let rows = trainer.rows.value
        try report(
            rows: rows, batches: (rows + batchSize - 1) / batchSize, since: start,
            extra: ["k": concurrency, "shuffle": configuration.plan.shuffle])
    default:
        fail("unknown command \(argument(1)); expected reset, infer or read")
    }
} catch {
    fail("\(error)")
}
