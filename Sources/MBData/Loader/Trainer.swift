/// What a trainer is told about the batch it is given.
public struct TrainingContext: Sendable {
    /// The step this batch belongs to (synchronous mode: `concurrency` batches a step;
    /// asynchronous mode: the batch's position in this run).
    public var step: Int
    /// Which of the concurrent slots (0..<concurrency) runs it. A call holds its slot until it
    /// returns, so no two calls running at once share a slot: a trainer may keep one model
    /// replica or device stream per slot. Synchronous mode gives the step's i-th batch slot
    /// i; asynchronous mode gives each call the lowest slot free when it starts.
    public var slot: Int
}

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
///   cancelled, per `Configuration.cancelInFlightOnFailure`), and `run` rethrows the error
///   wrapped with the epoch and batch it came from. The failed batch is not finished.
/// - Task cancellation reaches `train` as usual; a call that returns normally anyway still
///   counts as finished.
/// - In synchronous mode, `finishStep` runs after all batches of a step returned and
///   before any batch of the next step starts (apply accumulated gradients here).
public protocol Trainer: Sendable {
    /// Consumes one batch; the batch is finished when this returns. Throwing stops the run
    /// (the contract above).
    func train(_ batch: Batch, context: TrainingContext) async throws
    /// Synchronous mode: runs after every batch of step `step` returned, before the next
    /// step starts (and once more after a last, shorter step). Throwing stops the run.
    func finishStep(_ step: Int) async throws
}

extension Trainer {
    /// Does nothing: asynchronous-mode trainers, and synchronous ones with nothing to do
    /// between steps, need not implement it.
    public func finishStep(_ step: Int) async throws {}
}
