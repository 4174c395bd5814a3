/// The gradients of one synchronous step, kept per slot and summed in slot order, so that the
/// step's update does not depend on which consumer finished first.
///
/// Float addition is not associative: adding the k batch gradients as they arrive gives
/// different bits when the consumers finish in a different order. Here each slot keeps its own
/// partial sum and `reduce()` adds them as ((g0 + g1) + g2) + …, the same every run.
/// `.arrival` keeps the old behaviour (one buffer, added to as calls return) to show the
/// difference.
struct DeterministicAccumulator: Sendable {
    /// How the step's batch gradients are added up.
    enum Order: String, Sendable {
        /// Per-slot buffers, summed in slot order at the end of the step (reproducible).
        case slot
        /// One buffer, added to in the order the calls return (depends on timing).
        case arrival
    }

    let order: Order
    private let size: Int
    private var partials: [[Float]?]
    private var samples: [Int]
    private var arrivalSum: [Float]
    /// Slots in the order their gradients arrived this step.
    private(set) var arrivals: [Int] = []

    init(slots: Int, size: Int, order: Order) {
        self.order = order
        self.size = size
        partials = Array(repeating: nil, count: slots)
        samples = Array(repeating: 0, count: slots)
        arrivalSum = Array(repeating: 0, count: size)
    }

    /// The running sum `slot` adds its rows to: what it stored since the last reduce (a single
    /// consumer updating every n batches sums all n batches' rows in one buffer), or zeros.
    func partial(for slot: Int) -> [Float] {
        order == .slot ? partials[slot] ?? Array(repeating: 0, count: size) : Array(repeating: 0, count: size)
    }

    /// Stores `slot`'s running sum after it added `count` rows.
    mutating func store(_ partial: [Float], slot: Int, samples count: Int) {
        arrivals.append(slot)
        samples[slot] += count
        switch order {
        case .slot: partials[slot] = partial
        case .arrival: for i in arrivalSum.indices { arrivalSum[i] += partial[i] }
        }
    }

    /// The step's summed gradient and its sample count, or nil when nothing was stored; clears.
    mutating func reduce() -> (sum: [Float], samples: Int)? {
        let total = samples.reduce(0, +)
        guard total > 0 else { return nil }
        var sum: [Float]
        switch order {
        case .slot:
            sum = Array(repeating: 0, count: size)
            for partial in partials {
                guard let partial else { continue }
                for i in sum.indices { sum[i] += partial[i] }
            }
        case .arrival:
            sum = arrivalSum
            arrivalSum = Array(repeating: 0, count: size)
        }
        partials = Array(repeating: nil, count: partials.count)
        samples = Array(repeating: 0, count: samples.count)
        arrivals = []
        return (sum, total)
    }
}
