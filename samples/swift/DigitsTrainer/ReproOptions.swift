import Foundation

/// The flags of the reproducibility experiments (`make reproducibility`), taken out of the
/// argument list before `Arguments` reads the rest:
///
/// - `--consumers K` (default 4) and `--mode sync|async` (default sync): the loader's
///   concurrency and mode.
/// - `--batches-per-update N`: synchronous mode, batches whose gradients make one update
///   (default K). `--consumers 1 --batches-per-update 4` is the single-consumer reference:
///   one gradient sum over each global batch of 4 × 32 samples. Such a run is for comparison:
///   a state saved in the middle of an update (Ctrl-C, `--max-steps`) lacks its partial sum.
/// - `--reduction slot|arrival`: how a step's gradients are added (``DeterministicAccumulator``).
/// - `--epochs E`: epochs to train (default 15).
/// - `--jitter-ms MS --jitter-seed S`: each call waits a pseudo-random 0..<MS ms (a function
///   of S, the step and the slot) before handing in its gradient, so consumers finish in
///   orders that differ from seed to seed.
/// - `--save-every N`: writes the state file (weights + loader checkpoint, atomically) after
///   every N steps, so that a SIGKILL leaves something to resume from.
/// - `--kill-at STEP:SLOT` or `--kill-at STEP:end`: the trainer SIGKILLs itself once SLOT has
///   handed in its gradient in STEP (mid-step), or once STEP is applied and saved.
/// - `--save-weights PATH`: at the end, the weights (640 float32, little-endian) then the bias
///   (10 float32), with their FNV-1a hash printed.
/// - `--compare A B`: prints max |Δw| between two such files and whether they are bitwise equal.
struct ReproOptions: Sendable {
    /// Where `--kill-at` strikes.
    enum KillPoint: Sendable, Equatable {
        /// After `slot` handed in its gradient in `step`.
        case midStep(step: Int, slot: Int)
        /// After `step` was applied (and saved, if due).
        case afterStep(Int)
    }

    var consumers = 4
    var asynchronous = false
    var batchesPerUpdate: Int?
    var reduction = DeterministicAccumulator.Order.slot
    var epochs = 15
    var jitterMilliseconds = 0
    var jitterSeed: UInt64 = 0
    var saveEvery: Int?
    var killAt: KillPoint?
    var saveWeights: String?
    var compare: (String, String)?

    /// Batches per update: `--batches-per-update`, else one step of K (synchronous) or 1.
    var updateEvery: Int { asynchronous ? 1 : batchesPerUpdate ?? consumers }

    /// Reads and removes its flags from `arguments`; exits with a message on a malformed one.
    init(removingFrom arguments: inout [String]) {
        var rest: [String] = []
        var iterator = arguments.makeIterator()
        func value(_ flag: String) -> String {
            guard let value = iterator.next() else { Self.fail("\(flag) needs a value") }
            return value
        }
        func number(_ flag: String) -> Int {
            guard let number = Int(value(flag)), number >= 0 else { Self.fail("\(flag) needs a non-negative integer") }
            return number
        }
        while let argument = iterator.next() {
            switch argument {
            case "--consumers": consumers = max(1, number(argument))
            case "--mode":
                let mode = value(argument)
                guard mode == "sync" || mode == "async" else { Self.fail("--mode is sync or async") }
                asynchronous = mode == "async"
            case "--batches-per-update": batchesPerUpdate = max(1, number(argument))
            case "--reduction":
                guard let order = DeterministicAccumulator.Order(rawValue: value(argument)) else { Self.fail("--reduction is slot or arrival") }
                reduction = order
            case "--epochs": epochs = max(1, number(argument))
            case "--jitter-ms": jitterMilliseconds = number(argument)
            case "--jitter-seed": jitterSeed = UInt64(number(argument))
            case "--save-every": saveEvery = max(1, number(argument))
            case "--kill-at": killAt = Self.killPoint(value(argument))
            case "--save-weights": saveWeights = value(argument)
            case "--compare": compare = (value(argument), value(argument))
            default: rest.append(argument)
            }
        }
        arguments = rest
    }

    private static func killPoint(_ text: String) -> KillPoint {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let step = Int(parts[0]) else { fail("--kill-at is STEP:SLOT or STEP:end") }
        if parts[1] == "end" { return .afterStep(step) }
        guard let slot = Int(parts[1]) else { fail("--kill-at is STEP:SLOT or STEP:end") }
        return .midStep(step: step, slot: slot)
    }

    private static func fail(_ message: String) -> Never {
        print("digits-trainer: \(message)")
        exit(2)
    }
}
