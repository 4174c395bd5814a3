/// What an output may be, on top of the sample-schema rules: outputs are fixed-size numeric
/// tensors (or scalars) that a model returns for every row of a batch.
enum OutputSchemaRules {
    /// Refuses a name that is not `^[A-Za-z][A-Za-z0-9_]{0,63}$` (the field-name rule), so
    /// that `outputs_<name>` is a plain SQL identifier.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument`.
    static func checkName(_ name: String) throws {
        guard Schema.isValidFieldName(name) else {
            throw MBDataError(
                .invalidArgument, "output name \"\(name)\" must match ^[A-Za-z][A-Za-z0-9_]{0,63}$", parameter: "name")
        }
    }

    /// Refuses a schema with a key, or with a field that is `string`, `bytes` or has a
    /// variable (`null`) dimension.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidSchema`, naming the field.
    static func check(_ schema: Schema) throws {
        try schema.validate()
        if let key = schema.key {
            throw MBDataError(.invalidSchema, "an output schema has no key: outputs are keyed by the samples' _id", field: key)
        }
        for field in schema.fields {
            if field.dtype.isVariableLength {
                throw MBDataError(
                    .invalidSchema, "an output field must be numeric or bool, not \(field.dtype.rawValue)", field: field.name)
            }
            if !field.isFixedShape {
                throw MBDataError(
                    .invalidSchema, "an output field needs a fixed shape, got \(field.shapeDescription)", field: field.name)
            }
        }
    }
}
