import Foundation
import MBData

/// What the reproducibility flags (``ReproOptions``) add to a training run: the seeded
/// per-call delays, the state saved between steps, the self-inflicted SIGKILLs, and the record
/// of losses and staleness.
struct ReproHooks: Sendable {
    let options: ReproOptions
    let loader: MultiBatchLoader
    let model: SoftmaxModel
    let statePath: String
    let log = TrainingLog()

    /// Waits the call's pseudo-random delay (0..<`--jitter-ms` ms), a function of the seed,
    /// the step and the slot only.
    func jitter(step: Int, slot: Int) async throws {
        guard options.jitterMilliseconds > 0 else { return }
        var random = SeededGenerator(seed: options.jitterSeed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(slot))
        try await Task.sleep(for: .milliseconds(random.next() % UInt64(options.jitterMilliseconds)))
    }

    /// SIGKILLs the process when `slot` of `step` is the `--kill-at STEP:SLOT` point.
    func afterGradient(step: Int, slot: Int) {
        if options.killAt == .midStep(step: step, slot: slot) { die("mid-step \(step), after slot \(slot)") }
    }

    /// Synchronous mode, between steps: applies the accumulated gradient when an update is due,
    /// saves the state every `--save-every` steps (weights and checkpoint of whole steps
    /// together), then SIGKILLs at a `--kill-at STEP:end` point.
    func finishStep(_ step: Int, learningRate: Float) async throws {
        let batchesDone = (step + 1) * options.consumers
        if batchesDone % options.updateEvery == 0 {
            await model.applyStep(learningRate: learningRate)
            if let every = options.saveEvery, (step + 1) % every == 0 {
                let state = TrainingState(checkpoint: await loader.checkpoint(), weights: await model.weights, bias: await model.bias)
                try TrainingStateFile.save(state, to: statePath)
                // stdout to a file is buffered: a run killed later still logs up to its last save.
                fflush(nil)
            }
        }
        if options.killAt == .afterStep(step) { die("after step \(step)") }
    }

    private func die(_ point: String) -> Never {
        fflush(nil)
        FileHandle.standardOutput.write(Data("SIGKILL \(point)\n".utf8))
        kill(getpid(), SIGKILL)
        fatalError("SIGKILL did not end the process")
    }

    /// The figures a run prints at its end: losses by epoch, staleness (asynchronous mode),
    /// steps reduced out of arrival order, held-out loss, and the weights' hash.
    func report(validation: [(pixels: ArraySlice<Float>, label: Int)]) async throws {
        let (weights, bias) = await (model.weights, model.bias)
        var loss: Double = 0
        for sample in validation {
            loss -= Double(Foundation.log(max(SoftmaxModel.probabilities(sample.pixels, weights, bias)[sample.label], 1e-12)))
        }
        print(await log.summary(asynchronous: options.asynchronous, consumers: options.consumers))
        let reordered = await model.reorderedSteps
        let reduced = await model.reducedSteps
        if !options.asynchronous {
            print("updates: \(reduced); \(reordered) of them had their gradients arrive out of slot order (\(options.reduction.rawValue)-order reduction)")
        }
        print(String(format: "held-out loss %.5f", loss / Double(max(validation.count, 1))))
        if let path = options.saveWeights {
            print("weights fnv1a64:\(try WeightsFile.save(weights: weights, bias: bias, to: path)) written to \(path)")
        }
    }
}
