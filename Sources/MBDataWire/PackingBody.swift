import MBDataTraining

/// A packing spec as the `packing` member of a cursor document spells it
/// (schemas/serve-protocol.md §2): `{"field", "row_length", "window", "overlong"}`.
struct PackingBody: Codable {
    var field: String
    var rowLength: Int
    var window: Int
    var overlong: OverlongPolicy

    private enum CodingKeys: String, CodingKey {
        case field, window, overlong
        case rowLength = "row_length"
    }

    init(_ spec: PackingSpec) {
        field = spec.field
        rowLength = spec.rowLength
        window = spec.packer.window
        overlong = spec.packer.overlong
    }

    /// The spec; throws `MBDataError` for a length or window that is not positive.
    func spec() throws -> PackingSpec {
        try PackingSpec(field: field, rowLength: rowLength, window: window, overlong: overlong)
    }
}
