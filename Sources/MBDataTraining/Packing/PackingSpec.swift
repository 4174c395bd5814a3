/// Which field to pack and how: what a plan, a loader configuration or `mbdata shard --pack`
/// names.
public struct PackingSpec: Sendable, Hashable, Codable {
    /// The variable-length 1-D field whose values are packed (e.g. `tokens`).
    public let field: String
    /// The packer: row length, window and overlong policy.
    public let packer: SequencePacker

    /// Packs `field` into rows of `rowLength` values over windows of `window` samples.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for an empty field
    ///   name or a length or window that is not positive.
    public init(field: String, rowLength: Int, window: Int = SequencePacker.defaultWindow, overlong: OverlongPolicy = .split) throws {
        guard !field.isEmpty else { throw MBDataError(.invalidArgument, "packing needs a field name", parameter: "field") }
        self.field = field
        packer = try SequencePacker(rowLength: rowLength, window: window, overlong: overlong)
    }

    /// Tokens per row, L.
    public var rowLength: Int { packer.rowLength }

    /// The spec as text for plan fingerprints and checkpoints.
    package var key: String { "\(field)|\(packer.key)" }
}
