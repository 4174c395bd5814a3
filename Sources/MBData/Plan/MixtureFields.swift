/// The rule that lets datasets share a mixture's batches: the same fields — names, dtypes
/// and shapes — in any order; each source's values are put in the first source's order.
enum MixtureFields {
    /// Refuses sources whose fields differ from the first source's, naming the source and field.
    static func check(_ schemas: [Schema], names: [String]) throws {
        guard let first = schemas.first else { return }
        for (schema, name) in zip(schemas, names).dropFirst() {
            for field in first.fields {
                guard let other = schema.field(named: field.name) else {
                    throw MBDataError(
                        .invalidArgument, "mixture source '\(name)' has no field \(field.name) (source '\(names[0])' has \(field.typeDescription))",
                        field: field.name)
                }
                guard other.dtype == field.dtype, other.shape == field.shape else {
                    throw MBDataError(
                        .invalidArgument,
                        "mixture source '\(name)' has field \(field.name) as \(other.typeDescription), source '\(names[0])' as \(field.typeDescription)",
                        field: field.name)
                }
            }
            if let extra = schema.fields.first(where: { first.field(named: $0.name) == nil }) {
                throw MBDataError(
                    .invalidArgument, "mixture source '\(name)' has field \(extra.name), which source '\(names[0])' lacks", field: extra.name)
            }
        }
    }

    /// For each field of `target`, its index in `schema` (same fields, checked by ``check(_:names:)``).
    static func order(of schema: Schema, as target: Schema) -> [Int] {
        target.fields.map { field in schema.index(of: field.name)! }
    }
}
