/// The grammar of a mixture written as text items, each a source's name, a separator and its
/// weight in ``MixtureWeight``'s text form: `mbdata shard --mix web.mbdb=0.6 code.mbdb=repeat:2`
/// (``Syntax/commandLine``) and a daemon's `mix=web:0.6,code:repeat:2` (``Syntax/query``).
/// Both spellings are read by ``parse(_:syntax:)``, so they refuse the same things in the
/// same words.
public enum MixtureItems {
    /// How one spelling separates a name from its weight: ``commandLine`` or ``query``.
    public struct Syntax: Sendable, Hashable {
        /// Between the name and the weight.
        public let separator: Character
        /// Whether the name ends at the separator's last occurrence in the item (a path may
        /// hold the separator, a weight never does) rather than its first (a name never does).
        public let nameEndsAtLastSeparator: Bool
        /// What the name is, in error messages: `PATH`, `NAME`.
        public let nameWord: String

        /// `PATH=WEIGHT`, one item per argument: a path may hold `=`, so the last one ends it.
        public static let commandLine = Syntax(separator: "=", nameEndsAtLastSeparator: true, nameWord: "PATH")
        /// `NAME:WEIGHT`, items joined by commas: a served dataset's name holds no `:`, so the
        /// first one ends it (the weight may hold another: `repeat:2`).
        public static let query = Syntax(separator: ":", nameEndsAtLastSeparator: false, nameWord: "NAME")

        /// The item's form in words: `NAME:WEIGHT`.
        public var itemForm: String { "\(nameWord)\(separator)WEIGHT" }
    }

    /// The most items a mixture may have: a shard manifest lists at most as many sources,
    /// and seeking a batch costs O(sources²).
    public static let maxCount = 1024

    /// What a weight must be, in words.
    public static let expectedWeight = "a proportion (0.6), repeat:R or choose:N"

    /// The items' names and weights, in order.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` and `parameter`
    ///   "mixture", naming the item at fault: no item, more than ``maxCount``, an empty item,
    ///   an item without the separator, an empty name, a weight that is not
    ///   ``expectedWeight``, a name given twice. The weight's value is not checked here: a
    ///   mixture refuses a weight that is not positive and finite.
    public static func parse(_ items: [some StringProtocol], syntax: Syntax) throws -> [(name: String, weight: MixtureWeight)] {
        guard !items.isEmpty else { throw refusal("no item: expected \(syntax.itemForm) …") }
        guard items.count <= maxCount else { throw refusal("\(items.count) items, more than the \(maxCount) a mixture may have") }
        var parsed: [(name: String, weight: MixtureWeight)] = []
        var seen: Set<String> = []
        for (position, item) in items.enumerated() {
            let shown = "item \(position + 1) \"\(item.prefix(80))\""
            let separator = syntax.nameEndsAtLastSeparator ? item.lastIndex(of: syntax.separator) : item.firstIndex(of: syntax.separator)
            guard let separator else {
                throw refusal("\(shown) is not \(syntax.itemForm)\(item.isEmpty ? " (it is empty)" : ": it has no '\(syntax.separator)'")")
            }
            let name = String(item[..<separator])
            guard !name.isEmpty else { throw refusal("\(shown) has no \(syntax.nameWord) before '\(syntax.separator)'") }
            let weightText = String(item[item.index(after: separator)...])
            guard let weight = MixtureWeight(weightText) else {
                throw refusal("\(shown): WEIGHT \"\(weightText.prefix(40))\" is not \(expectedWeight)")
            }
            guard seen.insert(name).inserted else { throw refusal("\(shown) names \(name.prefix(80)) again: each source once") }
            parsed.append((name, weight))
        }
        return parsed
    }

    private static func refusal(_ message: String) -> MBDataError {
        MBDataError(.invalidArgument, "mixture " + message, parameter: "mixture")
    }
}
