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
        let rate = Double(progress.recordsRead) / max(progress.elapsedSeconds, 1e-6)
        let detail = String(format: "%.1f MB, %.0f rows/s", Double(progress.bytesRead) / 1e6, rate)
        if let total = progress.expectedRecords, total > 0 {
            show(label: progress.source, done: progress.recordsRead, total: total, unit: "rows", detail: detail, elapsed: progress.elapsedSeconds)
        } else if let total = progress.expectedBytes, total > 0 {
            show(label: progress.source, done: progress.bytesRead, total: total, unit: "bytes", detail: "\(progress.recordsRead) rows, " + detail, elapsed: progress.elapsedSeconds)
        } else {
            show(label: progress.source, done: progress.recordsRead, total: nil, unit: "rows", detail: detail, elapsed: progress.elapsedSeconds)
        }
    }

    /// `label: [####....]  42% 420/1000 unit, detail, ETA 3s`, or without a total `label: 420 unit, detail`.
    func show(label: String, done: Int, total: Int?, unit: String, detail: String, elapsed: Double) {
        guard enabled, due() else { return }
        var line = "\(label): "
        if let total, total > 0 {
            let fraction = min(Double(done) / Double(total), 1)
            let width = 24
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += String(format: "%3.0f%% ", fraction * 100) + "\(done)/\(total) \(unit), \(detail)"
            if fraction > 0.001 { line += String(format: ", ETA %.0fs", elapsed * (1 - fraction) / fraction) }
        } else {
            line += "\(done) \(unit), \(detail)"
        }
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
