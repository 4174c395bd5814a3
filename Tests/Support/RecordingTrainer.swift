import MBData

/// The one trainer of the Swift tests: it records every call it gets — which batches
/// finished, their sample ids, the order of starts and ends, the slots in use, how many
/// calls ran at once — and can take a seeded random time per call (so calls finish out of
/// order) or fail on a given batch or after some calls.
public actor RecordingTrainer: Trainer {
    /// One call: a batch of an epoch.
    public struct Call: Hashable, Sendable, CustomStringConvertible {
        public var epoch: Int
        public var batch: Int
        public init(epoch: Int, batch: Int) {
            self.epoch = epoch
            self.batch = batch
        }
        public var description: String { "epoch \(epoch) batch \(batch)" }
    }

    /// What a planned failure throws: the loader must hand it back as the cause of its
    /// `.trainerFailed` error.
    public struct Failure: Error, Equatable {
        public var call: Call
        public init(call: Call) { self.call = call }
    }

    /// The calls that returned, in the order they returned.
    public private(set) var finished: [Call] = []
    /// The real samples' ids (padding rows, with negative ids, left out) by epoch, in the
    /// order their calls returned.
    public private(set) var ids: [Int: [Int64]] = [:]
    /// Every delivered batch's ids, padding included, by call.
    public private(set) var batches: [Call: [Int64]] = [:]
    /// Each delivered batch's int64 field `field` by sample id (see `recordField`).
    public private(set) var fieldValues: [Int64: Int64] = [:]
    /// `start s`, `end s` (s the call's step) and `step s` (finishStep) in order.
    public private(set) var events: [String] = []
    /// Calls that were given a slot another running call held.
    public private(set) var slotClashes: [String] = []
    /// The slots calls were given.
    public private(set) var slotsUsed: Set<Int> = []
    /// The most calls that ran at once.
    public private(set) var maxRunning = 0
    /// Calls begun, including failed ones.
    public private(set) var deliveries = 0

    private var running = 0
    private var busySlots: Set<Int> = []
    private var seed: UInt64
    private let maxDelayNanoseconds: UInt64
    private let failAt: Call?
    private let failAfter: Int?
    private let recordField: String?
    private var onFinish: (@Sendable (Int) async -> Void)?

    /// - Parameters:
    ///   - delays: each call takes a random 0…`maxDelayMilliseconds` ms from a generator
    ///     seeded with `seed`, so calls finish out of order.
    ///   - failAt: the call of this batch throws ``Failure``.
    ///   - failAfter: every call after this many deliveries throws ``Failure``.
    ///   - recordField: an int64 field whose values to keep in ``fieldValues``.
    public init(
        delays: Bool = true, maxDelayMilliseconds: UInt64 = 3, seed: UInt64 = 1, failAt: Call? = nil, failAfter: Int? = nil,
        recordField: String? = nil
    ) {
        self.maxDelayNanoseconds = delays ? maxDelayMilliseconds * 1_000_000 : 0
        self.seed = seed
        self.failAt = failAt
        self.failAfter = failAfter
        self.recordField = recordField
    }

    /// Runs `body` with the number of finished calls each time a call finishes (before it
    /// returns to the loader).
    public func setOnFinish(_ body: @escaping @Sendable (Int) async -> Void) { onFinish = body }

    public func train(_ batch: Batch, context: TrainingContext) async throws {
        let call = Call(epoch: batch.epoch, batch: batch.index)
        deliveries += 1
        running += 1
        maxRunning = max(maxRunning, running)
        if !busySlots.insert(context.slot).inserted { slotClashes.append("\(call) in busy slot \(context.slot)") }
        slotsUsed.insert(context.slot)
        events.append("start \(context.step)")
        defer {
            running -= 1
            busySlots.remove(context.slot)
        }
        if maxDelayNanoseconds > 0 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            try? await Task.sleep(nanoseconds: (seed >> 33) % maxDelayNanoseconds)
        }
        if call == failAt || failAfter.map({ deliveries > $0 }) == true { throw Failure(call: call) }
        finished.append(call)
        batches[call] = batch.ids
        ids[batch.epoch, default: []] += batch.ids.filter { $0 >= 0 }
        if let recordField, let values = batch[recordField]?.int64s() {
            for (id, value) in zip(batch.ids, values) { fieldValues[id] = value }
        }
        events.append("end \(context.step)")
        if let onFinish { await onFinish(finished.count) }
    }

    public func finishStep(_ step: Int) async throws { events.append("step \(step)") }
}
