/// The packing spec as text — `FIELD=L` on the command line, `pack=FIELD:L` in a serve
/// request — checked by one rule for every surface: a field name, a row length within
/// ``rowLengths`` and a window within ``windows``.
extension PackingSpec {
    /// Row lengths a spec may name: those of a padded sequence, 1…``RecordLimits/maxSequenceLength``.
    public static let rowLengths = 1...RecordLimits.maxSequenceLength
    /// Windows a spec may name: 1…2^20 samples.
    public static let windows = 1...(1 << 20)

    /// What is wrong with a packing spec's text; each surface words it with its own names.
    public enum TextError: Error, Sendable, Equatable {
        /// The `FIELD<separator>L` part: not a field name and a length within ``rowLengths``.
        case fieldAndLength
        /// The window is outside ``windows``.
        case window
        /// The overlong policy is neither `split` nor `drop`.
        case overlong
    }

    /// What `FIELD<separator>L` must be, in words: `FIELD:L, a field name and a row length in 1...16777216`.
    public static func expectedFieldAndLength(separator: Character) -> String {
        "FIELD\(separator)L, a field name and a row length in \(rowLengths.lowerBound)...\(rowLengths.upperBound)"
    }

    /// What a window must be, in words.
    public static let expectedWindow = "an integer in \(windows.lowerBound)...\(windows.upperBound)"
    /// What an overlong policy must be, in words.
    public static let expectedOverlong = "split or drop"

    /// Parses `FIELD<separator>L` with a window and an overlong policy given as text.
    ///
    /// - Throws: ``TextError`` naming the part that is wrong.
    public static func parse(
        _ text: some StringProtocol, separator: Character, window: Int = SequencePacker.defaultWindow,
        overlong: String = OverlongPolicy.split.rawValue
    ) throws(TextError) -> PackingSpec {
        let parts = text.split(separator: separator, omittingEmptySubsequences: false)
        guard parts.count == 2, Schema.isValidFieldName(String(parts[0])), let length = Int(parts[1]), rowLengths.contains(length) else {
            throw .fieldAndLength
        }
        guard windows.contains(window) else { throw .window }
        guard let policy = OverlongPolicy(rawValue: overlong) else { throw .overlong }
        do {
            return try PackingSpec(field: String(parts[0]), rowLength: length, window: window, overlong: policy)
        } catch {
            // Unreachable: the field, length and window were checked above.
            throw .fieldAndLength
        }
    }
}
