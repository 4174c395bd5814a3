extension Field {
    /// Nil when `value`, as read from the samples table, is one this field can hold and the
    /// collator can encode; else what is wrong. A dataset file is outside input too: a value
    /// edited with `sqlite3` (a blob of the wrong length, an integer out of range, a REAL
    /// past float32) is refused here rather than trapping in collation or reaching a trainer.
    func problem(withStored value: SampleValue) -> String? {
        var scratch: [UInt8] = []
        switch (sqlType, value) {
        case ("INTEGER", .integer(let i)), ("REAL", .integer(let i)):
            return (try? ElementEncoding.append(.integer(i), as: dtype, to: &scratch)) == nil ? "value \(i) is outside \(dtype.rawValue)" : nil
        case ("REAL", .real(let d)):
            return (try? ElementEncoding.append(.real(d), as: dtype, to: &scratch)) == nil ? "value \(d) is outside \(dtype.rawValue)" : nil
        case ("TEXT", .text):
            return nil
        case ("BLOB", .blob(let bytes)):
            guard !isScalar, let itemSize = dtype.itemSize else { return nil }
            if let expected = fixedByteCount {
                return bytes.count == expected ? nil : "expected \(expected) bytes for \(typeDescription), got \(bytes.count)"
            }
            let unit = shape.compactMap { $0 }.reduce(itemSize, *)
            return bytes.count % unit == 0 ? nil : "\(bytes.count) bytes is not a whole number of \(unit)-byte rows of \(typeDescription)"
        default:
            return "expected \(sqlType) for \(typeDescription), got \(value.storageName)"
        }
    }
}

extension SampleValue {
    /// The SQLite storage class the value was read from.
    var storageName: String {
        switch self {
        case .integer: "INTEGER"
        case .real: "REAL"
        case .text: "TEXT"
        case .blob: "BLOB"
        }
    }
}
