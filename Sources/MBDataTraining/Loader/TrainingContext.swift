/// What a trainer is told about the batch it is given, and what it may ask of the loader
/// that gave it: a checkpoint, or an early stop.
public struct TrainingContext: Sendable {
    /// The global step of this batch: it counts from the start of the plan's first epoch and
    /// continues after a resume. Synchronous mode: `concurrency` batches a step, and the
    /// step number is the finished batches before this run divided by `concurrency`, plus the
    /// step within this run (a run resumed in the middle of a step starts by completing that
    /// step under its number). Asynchronous mode: the batch's position in the whole plan —
    /// the batches finished before this run plus its position in this run.
    public var step: Int
    /// The step within this run, from 0 (``step`` minus the steps before the run).
    public var stepInRun: Int
    /// Which of the concurrent slots (0..<concurrency) runs it. A call holds its slot until it
    /// returns, so no two calls running at once share a slot: a trainer may keep one model
    /// replica or device stream per slot. Synchronous mode gives the step's i-th batch slot
    /// i; asynchronous mode gives each call the lowest slot free when it starts.
    public var slot: Int
    /// Calls of the loader running when this one started, itself included (1…`concurrency`);
    /// ``MultiBatchLoader/inFlight`` is the live count. 1 outside a loader.
    public var inFlight = 1

    private let cursor: CursorTracker?
    private let stopSignal: StopSignal?

    /// A context as the loader makes it; `cursor` and `stopSignal` are the loader's.
    package init(step: Int, stepInRun: Int, slot: Int, cursor: CursorTracker?, stopSignal: StopSignal?) {
        self.step = step
        self.stepInRun = stepInRun
        self.slot = slot
        self.cursor = cursor
        self.stopSignal = stopSignal
    }

    /// A context for calling a trainer outside a loader (tests, evaluation): ``checkpoint()``
    /// returns nil and ``stop()`` does nothing.
    public init(step: Int, slot: Int = 0) {
        self.init(step: step, stepInRun: step, slot: slot, cursor: nil, stopSignal: nil)
    }

    /// The loader's checkpoint now, as ``MultiBatchLoader/checkpoint()`` returns it: the
    /// batch of this call is not in it (it finishes when `train` returns), nor are the other
    /// calls still running. Nil outside a loader.
    public func checkpoint() async -> LoaderCheckpoint? { await cursor?.snapshot() }

    /// Asks the loader to stop early, as ``MultiBatchLoader/stop()`` does.
    public func stop() { stopSignal?.request() }
}
