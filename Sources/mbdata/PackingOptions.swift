import ArgumentParser
import MBData

/// `--pack FIELD=L`, `--pack-window W`, `--overlong split|drop`: the packing a command's
/// plan names.
struct PackingOptions: ParsableArguments {
    @Option(help: "FIELD=L: pack a variable-length 1-D field into rows of L tokens (batch size then counts rows).")
    var pack: String?

    @Option(name: .customLong("pack-window"), help: "Samples per packing window (first-fit within each).")
    var packWindow: Int = SequencePacker.defaultWindow

    @Option(help: "What packing does with a sample longer than a row: split or drop.")
    var overlong: String = OverlongPolicy.split.rawValue

    /// The documented ranges: a row length as a padded length, a window up to 2^20 samples.
    static let rowLengths = 1...RecordLimits.maxSequenceLength
    static let windows = 1...(1 << 20)

    func validate() throws { _ = try spec() }

    /// The spec the options name; nil without `--pack`.
    func spec() throws -> PackingSpec? {
        guard let pack else { return nil }
        let parts = pack.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, let length = Int(parts[1]), Self.rowLengths.contains(length) else {
            throw ValidationError("--pack expects FIELD=L with L within \(Self.rowLengths.lowerBound)…\(Self.rowLengths.upperBound), got \(pack)")
        }
        guard let policy = OverlongPolicy(rawValue: overlong) else { throw ValidationError("--overlong must be split or drop, got \(overlong)") }
        guard Self.windows.contains(packWindow) else {
            throw ValidationError("--pack-window must be within \(Self.windows.lowerBound)…\(Self.windows.upperBound), got \(packWindow)")
        }
        return try PackingSpec(field: String(parts[0]), rowLength: length, window: packWindow, overlong: policy)
    }
}
