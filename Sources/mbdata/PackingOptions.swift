import ArgumentParser
import MBData

/// `--pack FIELD=L`, `--pack-window W`, `--overlong split|drop`: the packing a command's
/// plan names, parsed by ``PackingSpec/parse(_:separator:window:overlong:)`` as the daemon's
/// `pack=FIELD:L` is.
struct PackingOptions: ParsableArguments {
    @Option(help: "FIELD=L: pack a variable-length 1-D field into rows of L tokens (batch size then counts rows).")
    var pack: String?

    @Option(name: .customLong("pack-window"), help: "Samples per packing window (first-fit within each).")
    var packWindow: Int = SequencePacker.defaultWindow

    @Option(help: "What packing does with a sample longer than a row: split or drop.")
    var overlong: String = OverlongPolicy.split.rawValue

    func validate() throws { _ = try spec() }

    /// The spec the options name; nil without `--pack`.
    func spec() throws -> PackingSpec? {
        guard let pack else { return nil }
        do throws(PackingSpec.TextError) {
            return try PackingSpec.parse(pack, separator: "=", window: packWindow, overlong: overlong)
        } catch .fieldAndLength {
            throw ValidationError("--pack expects \(PackingSpec.expectedFieldAndLength(separator: "=")), got \(pack)")
        } catch .window {
            throw ValidationError("--pack-window expects \(PackingSpec.expectedWindow), got \(packWindow)")
        } catch .overlong {
            throw ValidationError("--overlong expects \(PackingSpec.expectedOverlong), got \(overlong)")
        }
    }
}
