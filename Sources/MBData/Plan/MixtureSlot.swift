/// One position of a mixture epoch's schedule: the `draw`-th draw (0-based) of `source` in
/// that epoch.
public struct MixtureSlot: Sendable, Hashable {
    /// The source's index in the mixture.
    public let source: Int
    /// How many draws of the same source precede this one in the epoch.
    public let draw: Int

    /// The `draw`-th draw of `source`.
    public init(source: Int, draw: Int) {
        self.source = source
        self.draw = draw
    }
}
