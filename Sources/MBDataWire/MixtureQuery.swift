import MBDataTraining

/// A mixture as a serve request names it (schemas/serve-protocol.md §1, protocol 1.2):
/// `mix=web:0.6,code:repeat:2,books:choose:1000` and, optionally, `epoch_size=N`.
///
/// Each comma-separated item is a dataset's name on the daemon, a colon, and its weight in
/// ``MixtureWeight``'s text form (`0.6`, `repeat:R`, `choose:N`). Dataset names hold no `:`
/// or `,`, so the first colon of an item ends its name.
public struct MixtureQuery: Sendable, Equatable {
    /// One source: a dataset the daemon serves and its weight.
    public struct Source: Sendable, Equatable {
        /// The dataset's name on the daemon; the name batches list in their `sources`.
        public var name: String
        /// Its share of each epoch.
        public var weight: MixtureWeight

        /// The dataset called `name` with `weight`.
        public init(name: String, weight: MixtureWeight) {
            self.name = name
            self.weight = weight
        }
    }

    /// The sources, in `_source` order.
    public var sources: [Source]
    /// Draws per epoch with proportion weights (nil: the sources' sizes summed); with
    /// repeat/choose weights, their total when given.
    public var epochSize: Int?

    /// The query parameter naming the sources and weights.
    public static let mixName = "mix"
    /// The query parameter of the epoch size.
    public static let epochSizeName = "epoch_size"
    /// What `mix` must be, in words.
    public static let expected = "NAME:WEIGHT,… with distinct dataset names and WEIGHT a proportion (0.6), repeat:R or choose:N"

    /// A mixture of `sources` with `epochSize` draws per epoch.
    public init(_ sources: [Source], epochSize: Int? = nil) {
        self.sources = sources
        self.epochSize = epochSize
    }

    /// The mixture of a loader's components, by name (their datasets, if any, are not sent).
    public init(components: [MixtureComponent], epochSize: Int? = nil) {
        self.init(components.map { Source(name: $0.name, weight: $0.weight) }, epochSize: epochSize)
    }

    /// The mixture a pinned mixture records, its epoch size given (the one it resolved to).
    public init(pinned: PinnedMixture) {
        self.init(pinned.sources.map { Source(name: $0.name, weight: $0.weight) }, epochSize: pinned.epochSize)
    }

    /// Parses the value of `mix` (``MixtureItems/parse(_:syntax:)`` with
    /// ``MixtureItems/Syntax/query``).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` naming the item at
    ///   fault: an empty item, a name without a weight, a weight that is not one, a name
    ///   given twice, more than ``MixtureItems/maxCount`` items.
    public init(parsing text: some StringProtocol, epochSize: Int? = nil) throws {
        let items = try MixtureItems.parse(text.split(separator: ",", omittingEmptySubsequences: false), syntax: .query)
        self.init(items.map { Source(name: $0.name, weight: $0.weight) }, epochSize: epochSize)
    }

    /// The value of `mix`: `web:0.6,code:repeat:2.0`, which ``init(parsing:epochSize:)`` reads back.
    public var mix: String { sources.map { "\($0.name):\($0.weight)" }.joined(separator: ",") }

    /// The sources as a loader's components (without datasets).
    public var components: [MixtureComponent] { sources.map { MixtureComponent(name: $0.name, weight: $0.weight) } }

    /// The query's items: `mix`, and `epoch_size` when given.
    public var items: [(name: String, value: String)] {
        [(Self.mixName, mix)] + (epochSize.map { [(Self.epochSizeName, "\($0)")] } ?? [])
    }
}
