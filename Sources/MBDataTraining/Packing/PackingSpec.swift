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

extension PackingSpec: ExpressibleByDictionaryLiteral {
    /// `["tokens": 2048]`: packs that one field into rows of that many values, with the
    /// default window and overlong policy. For literals in code: a literal that does not name
    /// exactly one field, or names an empty field or a length that is not positive, is a
    /// programming error (a precondition); make a spec from outside input with
    /// ``init(field:rowLength:window:overlong:)``, which throws.
    public init(dictionaryLiteral elements: (String, Int)...) {
        precondition(elements.count == 1, "a packing literal names exactly one field, got \(elements.count)")
        do {
            try self.init(field: elements[0].0, rowLength: elements[0].1)
        } catch {
            preconditionFailure("\(error)")
        }
    }
}
