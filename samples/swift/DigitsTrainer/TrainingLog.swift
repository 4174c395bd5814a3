import Foundation

/// Training loss by epoch and, in asynchronous mode, the staleness of each update: how many
/// updates other calls applied between a batch reading the weights and its own gradient
/// being applied.
actor TrainingLog {
    private var lossByEpoch: [Int: (sum: Double, samples: Int)] = [:]
    private var staleness: [Int: Int] = [:]
    private var inFlightSum = 0
    private var inFlightMax = 0

    func record(epoch: Int, loss: Double, samples: Int) {
        let previous = lossByEpoch[epoch] ?? (0, 0)
        lossByEpoch[epoch] = (previous.sum + loss, previous.samples + samples)
    }

    /// One asynchronous update: its staleness, and the calls in flight when its call started
    /// (`TrainingContext.inFlight`).
    func record(staleness updates: Int, inFlight: Int) {
        staleness[updates, default: 0] += 1
        inFlightSum += inFlight
        inFlightMax = max(inFlightMax, inFlight)
    }

    func summary(asynchronous: Bool, consumers: Int) -> String {
        let losses = lossByEpoch.keys.sorted().map { epoch in
            let entry = lossByEpoch[epoch]!
            return String(format: "%.4f", entry.sum / Double(max(entry.samples, 1)))
        }
        var lines = ["training loss by epoch: " + losses.joined(separator: " ")]
        if asynchronous {
            let total = staleness.values.reduce(0, +)
            let mean = Double(staleness.reduce(0) { $0 + $1.key * $1.value }) / Double(max(total, 1))
            let histogram = staleness.keys.sorted().map { "\($0):\(staleness[$0]!)" }.joined(separator: " ")
            lines.append(
                String(format: "staleness (async, k=%d): max %d, mean %.3f over %d updates; histogram %@; calls in flight at start: max %d, mean %.2f",
                    consumers, staleness.keys.max() ?? 0, mean, total, histogram, inFlightMax, Double(inFlightSum) / Double(max(total, 1))))
        }
        return lines.joined(separator: "\n")
    }
}
