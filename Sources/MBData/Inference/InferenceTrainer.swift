/// The trainer an inference job's loader runs: it calls the model and commits the outputs
/// before returning, so the loader's "finished" is "committed in the dataset file".
struct InferenceTrainer<Model: InferenceModel>: Trainer {
    let model: Model
    let dataset: Dataset
    let job: OutputJob

    func train(_ batch: Batch, context: TrainingContext) async throws {
        // Committed by another job since the run began, as far as this dataset has seen: no
        // model call for it. One committed unseen is found by its commit (`.alreadyDone`).
        if dataset.isKnownCommitted(batch: batch.index, of: job) { return }
        let outputs = try await model.infer(batch, context: context)
        do {
            _ = try await dataset.commitOutputs(outputs, batch: batch.index, of: job)
        } catch MBDataError.Code.alreadyDone {
            // Committed by another job or process meanwhile: finished all the same.
        } catch let error as CancellationError {
            throw error
        } catch {
            throw OutputCommitFailure(error: error)
        }
    }
}

/// A commit that failed for another reason than `.alreadyDone`: the job stops with `error`
/// itself rather than the loader's `.trainerFailed` around it.
struct OutputCommitFailure: Error {
    let error: any Error
}
