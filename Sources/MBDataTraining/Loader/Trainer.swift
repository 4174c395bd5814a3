/// The consumer `MultiBatchLoader` feeds: a model replica, a gradient accumulator, an
/// evaluator, or anything else that takes batches.
///
/// The contract:
/// - `train(_:context:)` may be called up to `concurrency` times at once, from different
///   tasks; an implementation must be safe for that (an actor, or locked state).
/// - A batch is *finished* when `train` returns. Only finished batches count in the
///   loader's checkpoint: a batch whose call was running, or never started, when the
///   checkpoint was taken is delivered again after a resume; a finished one never is.
/// - Throwing stops the loader: no new batch is started, calls in flight finish (or are
///   cancelled, per `Configuration.cancelInFlightOnFailure`), and `run` throws
///   `MBDataError` `.trainerFailed` naming the epoch and batch, with the trainer's error as
///   its `cause`. The failed batch is not finished.
/// - Task cancellation reaches `train` as usual; a call that returns normally anyway still
///   counts as finished.
/// - In synchronous mode, `finishStep` runs after all batches of a step returned and
///   before any batch of the next step starts (apply accumulated gradients here). Its
///   argument is the global step, as ``TrainingContext/step``.
/// - `context.stop()` ends the run early as ``MultiBatchLoader/stop()`` does, and
///   `context.checkpoint()` is the loader's checkpoint, with no reference to the loader.
public protocol Trainer: Sendable {
    /// Consumes one batch; returning finishes it.
    func train(_ batch: Batch, context: TrainingContext) async throws
    /// Ends global step `step` (synchronous mode only). Default: nothing.
    func finishStep(_ step: Int) async throws
}

extension Trainer {
    /// Does nothing.
    public func finishStep(_ step: Int) async throws {}
}
