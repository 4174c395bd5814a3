// A custom loader and trainer in pure Swift: softmax regression on the digits dataset,
// fed by MultiBatchLoader with k = 4 synchronous consumers. Each consumer computes the
// gradient of its batch against the current weights; after the 4 batches of a step the
// averaged gradient is applied (gradient accumulation over 4 × 32 samples).
//
//   swift run -c release digits-trainer out/demo/digits.mbdb [state.json]
//   swift run -c release digits-trainer out/demo/digits.mbdb --url http://127.0.0.1:7070 --rank 0 --world 2
//
// With --url the training batches come from `mbdata serve` (rank R of W, each with its own
// model: a demo of the daemon's partition streams); held-out accuracy is still measured
// on the dataset's `val` split read from the file.
//
// Ctrl-C (SIGINT) stops training cleanly: `loader.stop()` lets the step in progress finish
// (its gradient applied), then the loader's checkpoint and the weights are written to the
// state file (default: beside the dataset), and the next run resumes from them with exactly
// the batches that had not finished. `--max-steps N` stops at global step N from inside the
// trainer (`context.stop()`); the step count goes on across resumes.
//
// `--predict OUTPUT` then writes the trained model's predictions for the `val` split into
// the dataset file (output OUTPUT: `pred` int64, `prob` float32[10]; created if missing)
// through InferenceJob with 4 concurrent calls, and prints the accuracy from an SQL join of
// samples and outputs. A run killed while predicting is finished by the next run, which
// predicts only the batches without outputs. `--model-delay-ms N` makes each prediction call
// take N ms longer (a slow model, to watch or test that).
//
//   swift run -c release digits-trainer out/demo/digits.mbdb --predict preds
//   sqlite3 out/demo/digits.mbdb 'select avg(s.label = o.pred) from samples s join outputs_preds o using (_id)'
import Foundation
import MBData
import MBDataClient

/// The model's weights and the gradient being accumulated for the current step.
actor SoftmaxModel {
    static let features = 64
    static let classes = 10
    private(set) var weights = [Float](repeating: 0, count: features * classes)
    private(set) var bias = [Float](repeating: 0, count: classes)
    private var gradient = [Float](repeating: 0, count: features * classes + classes)
    private var samples = 0

    func restore(weights: [Float], bias: [Float]) {
        self.weights = weights
        self.bias = bias
    }

    func accumulate(_ batchGradient: [Float], samples count: Int) {
        for i in gradient.indices { gradient[i] += batchGradient[i] }
        samples += count
    }

    func applyStep(learningRate: Float) {
        guard samples > 0 else { return }
        let scale = learningRate / Float(samples)
        for i in weights.indices { weights[i] -= scale * gradient[i] }
        for c in 0..<Self.classes { bias[c] -= scale * gradient[weights.count + c] }
        gradient = [Float](repeating: 0, count: gradient.count)
        samples = 0
    }

    /// Class probabilities for one sample of 64 pixels scaled to 0…1.
    nonisolated static func probabilities(_ x: ArraySlice<Float>, _ weights: [Float], _ bias: [Float]) -> [Float] {
        var logits = bias
        for c in 0..<classes {
            var sum: Float = 0
            for (j, value) in x.enumerated() { sum += weights[c * features + j] * value }
            logits[c] += sum
        }
        let top = logits.max()!
        let exps = logits.map { Foundation.exp($0 - top) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }
}

struct SoftmaxTrainer: Trainer {
    let model: SoftmaxModel
    let learningRate: Float
    /// The global step to stop at (nil: run every epoch).
    let maxSteps: Int?

    func train(_ batch: Batch, context: TrainingContext) async throws {
        if let maxSteps, context.step + 1 >= maxSteps { context.stop() }
        if context.slot == 0, context.step % 100 == 0, let position = await context.checkpoint() {
            print("step \(context.step): \(position.finishedBatchCount) batches finished so far")
        }
        let pixels = batch["image"]!.floats().map { $0 / 16 }
        let labels = batch["label"]!.int64s()
        let (weights, bias) = await (model.weights, model.bias)
        var gradient = [Float](repeating: 0, count: weights.count + bias.count)
        for row in 0..<labels.count {
            let x = pixels[(row * 64)..<((row + 1) * 64)]
            var p = SoftmaxModel.probabilities(x, weights, bias)
            p[Int(labels[row])] -= 1
            for c in 0..<SoftmaxModel.classes {
                for (j, value) in x.enumerated() { gradient[c * 64 + j] += p[c] * value }
                gradient[weights.count + c] += p[c]
            }
        }
        await model.accumulate(gradient, samples: labels.count)
    }

    func finishStep(_ step: Int) async throws {
        await model.applyStep(learningRate: learningRate)
        if step == 0 {
            // Written at once (stdout to a file is buffered): a supervisor may wait for it.
            FileHandle.standardOutput.write(Data("training: the first step is done; Ctrl-C saves the state and stops\n".utf8))
        }
    }
}

/// What a run saves on Ctrl-C: the loader position and the model, together.
struct TrainingState: Codable {
    var checkpoint: LoaderCheckpoint
    var weights: [Float]
    var bias: [Float]
}

@main
struct DigitsTrainerMain {
    static func main() async throws {
        // Batch-sized buffers are freed and allocated again for every batch (AllocatorTuning).
        AllocatorTuning.applyForBatchWorkloads()
        let arguments = Arguments(CommandLine.arguments.dropFirst())
        let path = arguments.positional.first ?? "out/demo/digits.mbdb"
        let statePath = arguments.positional.dropFirst().first ?? path + ".trainer-state.json" + (arguments.url == nil ? "" : ".rank\(arguments.rank)")
        let dataset = try Dataset(path: path)
        var config = MultiBatchLoader.Configuration(batchSize: 32 * arguments.world, seed: 7, epochs: 0..<15)
        config.split = "train"
        config.concurrency = 4
        config.mode = .synchronous
        config.world = arguments.world
        config.rank = arguments.rank

        let model = SoftmaxModel()
        var resumeFrom: LoaderCheckpoint?
        if let data = FileManager.default.contents(atPath: statePath) {
            let state = try JSONDecoder().decode(TrainingState.self, from: data)
            await model.restore(weights: state.weights, bias: state.bias)
            resumeFrom = state.checkpoint
            print("resuming: \(state.checkpoint.finishedBatchCount) batches already finished")
        }
        let loader: MultiBatchLoader
        if let url = arguments.url {
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            let source = try ServeSource(url: url, dataset: name, group: arguments.group)
            loader = try await MultiBatchLoader(remote: source, configuration: config, resumingFrom: resumeFrom)
        } else {
            loader = try await MultiBatchLoader(dataset: dataset, configuration: config, resumingFrom: resumeFrom)
        }

        let started = Date()
        let interrupted = try await runUntilInterrupted(loader) {
            try await loader.run(trainer: SoftmaxTrainer(model: model, learningRate: 0.5, maxSteps: arguments.maxSteps))
        }
        let seconds = Date().timeIntervalSince(started)
        let checkpoint = await loader.checkpoint()
        let stoppedEarly = checkpoint.finishedBatchCount < checkpoint.batchesPerEpoch * config.epochs.count
        if interrupted || stoppedEarly {
            let state = TrainingState(checkpoint: checkpoint, weights: await model.weights, bias: await model.bias)
            try JSONEncoder().encode(state).write(to: URL(fileURLWithPath: statePath), options: .atomic)
            let why = interrupted ? "interrupted" : "stopped at step \(arguments.maxSteps ?? 0)"
            print("\(why) after \(checkpoint.finishedBatchCount) finished batches; state saved to \(statePath); run again to resume")
            exit(interrupted ? 130 : 0)
        }
        try? FileManager.default.removeItem(atPath: statePath)

        let validation = try await dataset.samples(split: "val")
        let (weights, bias) = await (model.weights, model.bias)
        var correct = 0
        for sample in validation {
            guard case .blob(let image) = sample.values[1], case .integer(let label) = sample.values[2] else { continue }
            let p = SoftmaxModel.probabilities(ArraySlice(image.map { Float($0) / 16 }), weights, bias)
            if p.firstIndex(of: p.max()!) == Int(label) { correct += 1 }
        }
        let accuracy = Double(correct) / Double(max(validation.count, 1))
        let source = arguments.url.map { "rank \(arguments.rank) of \(arguments.world) from \($0)" } ?? "from the dataset file"
        print(
            String(
                format: "digits (%@): %d epochs × %d batches of 32 on 4 synchronous consumers in %.2f s (%.0f samples/s); held-out accuracy %.1f%% (%d/%d)",
                source, config.epochs.count, checkpoint.batchesPerEpoch, seconds,
                Double(config.epochs.count * checkpoint.batchesPerEpoch * 32) / seconds, accuracy * 100, correct, validation.count))
        if let output = arguments.predict {
            try await Predictions.write(
                output, dataset: dataset, weights: weights, bias: bias, delay: .milliseconds(arguments.modelDelayMilliseconds))
        }
        if accuracy < 0.9 {
            print("accuracy below 90%")
            exit(1)
        }
    }

    /// Runs `body` (the loader's run) until it returns; SIGINT calls `loader.stop()`, so the
    /// step in progress finishes and the run returns normally with a checkpoint of whole steps.
    /// Returns true when interrupted.
    static func runUntilInterrupted(_ loader: MultiBatchLoader, _ body: @escaping @Sendable () async throws -> Void) async throws -> Bool {
        signal(SIGINT, SIG_IGN)
        let signals = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "sigint"))
        let (interrupts, continuation) = AsyncStream<Void>.makeStream()
        signals.setEventHandler { continuation.yield() }
        signals.resume()
        defer { signals.cancel() }
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in interrupts {
                    loader.stop()
                    return true
                }
                return false
            }
            try await body()
            continuation.finish()
            return try await group.next() ?? false
        }
    }
}

/// `DATASET [STATE] [--url URL] [--rank R] [--world W] [--group G] [--max-steps N]
/// [--predict OUTPUT] [--model-delay-ms N]`.
struct Arguments {
    var positional: [String] = []
    var url: String?
    var rank = 0
    var world = 1
    var group = "digits-trainer"
    var maxSteps: Int?
    var predict: String?
    var modelDelayMilliseconds = 0

    init(_ arguments: ArraySlice<String>) {
        var rest = arguments
        while let argument = rest.popFirst() {
            switch argument {
            case "--url": url = rest.popFirst()
            case "--rank": rank = rest.popFirst().flatMap { Int($0) } ?? 0
            case "--world": world = rest.popFirst().flatMap { Int($0) } ?? 1
            case "--group": group = rest.popFirst() ?? group
            case "--max-steps": maxSteps = rest.popFirst().flatMap { Int($0) }
            case "--predict": predict = rest.popFirst()
            case "--model-delay-ms": modelDelayMilliseconds = rest.popFirst().flatMap { Int($0) } ?? 0
            default: positional.append(argument)
            }
        }
    }
}
