import Foundation
import MBData
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A one-line progress display on stderr (a TTY only): rows, MB, rows/s and an ETA when the
/// total is known. Called from the writer thread; redraws at most ten times a second.
final class ProgressLine: Sendable {
    private let lastDraw = Mutex<Double>(0)
    private let enabled: Bool

    init(enabled: Bool = standardErrorIsTerminal) { self.enabled = enabled }

    func update(_ progress: IngestProgress) {
        guard enabled else { return }
        let now = Date().timeIntervalSince1970
        let due = lastDraw.withLock { last in
            guard now - last >= 0.1 else { return false }
            last = now
            return true
        }
        guard due else { return }
        let rate = Double(progress.recordsRead) / max(progress.elapsedSeconds, 1e-6)
        let megabytes = Double(progress.bytesRead) / 1e6
        var fraction: Double?
        if let total = progress.expectedRecords, total > 0 {
            fraction = Double(progress.recordsRead) / Double(total)
        } else if let total = progress.expectedBytes, total > 0 {
            fraction = Double(progress.bytesRead) / Double(total)
        }
        var line = "\(progress.source): "
        if let fraction {
            let width = 24
            let filled = min(width, Int(fraction * Double(width)))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += String(format: "%3.0f%% ", min(fraction, 1) * 100)
        }
        line += "\(progress.recordsRead) rows, " + String(format: "%.1f MB, %.0f rows/s", megabytes, rate)
        if let fraction, fraction > 0.001 {
            let remaining = progress.elapsedSeconds * (1 - fraction) / fraction
            line += String(format: ", ETA %.0fs", remaining)
        }
        writeStandardError("\r\u{1B}[K" + line)
    }

    /// A generic counter line: `label: [####....]  42% 420/1000 unit, detail, ETA 3s`.
    func show(label: String, done: Int, total: Int, unit: String, detail: String, elapsed: Double) {
        guard enabled, due() else { return }
        let fraction = total > 0 ? Double(done) / Double(total) : 0
        let width = 24
        let filled = min(width, Int(fraction * Double(width)))
        var line = "\(label): [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
        line += String(format: "%3.0f%% ", fraction * 100) + "\(done)/\(total) \(unit), \(detail)"
        if fraction > 0.001 { line += String(format: ", ETA %.0fs", elapsed * (1 - fraction) / fraction) }
        writeStandardError("\r\u{1B}[K" + line)
    }

    private func due() -> Bool {
        let now = Date().timeIntervalSince1970
        return lastDraw.withLock { last in
            guard now - last >= 0.1 else { return false }
            last = now
            return true
        }
    }

    func finish() {
        guard enabled else { return }
        writeStandardError("\r\u{1B}[K")
    }
}
