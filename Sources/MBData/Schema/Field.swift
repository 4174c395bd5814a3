/// One named, typed value of every sample.
public struct Field: Hashable, Codable, Sendable {
    /// The field's name: `^[A-Za-z][A-Za-z0-9_]{0,63}$`, unique without regard to case. It
    /// names the SQLite column and the batch tensor (`batch["image"]`).
    public var name: String
    /// The element type.
    public var dtype: DType
    /// Dimensions; empty for a scalar; `nil` marks a variable dimension.
    public var shape: [Int?]
    /// Free text for people; not used by mbdata.
    public var description: String?

    /// A field; the schema that holds it checks the name, dtype and shape
    /// (``Schema/validate()``).
    ///
    /// - Parameters:
    ///   - name: The field's name.
    ///   - dtype: The element type.
    ///   - shape: The dimensions, `nil` for the one variable dimension; empty (default) for a scalar.
    ///   - description: Free text for people.
    public init(name: String, dtype: DType, shape: [Int?] = [], description: String? = nil) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.description = description
    }

    /// True when the shape is empty: one element per sample.
    public var isScalar: Bool { shape.isEmpty }
    /// True when every dimension is known, so every sample has the same element count.
    public var isFixedShape: Bool { shape.allSatisfy { $0 != nil } }
    /// Element count for a fixed shape (1 for a scalar).
    public var fixedElementCount: Int? {
        isFixedShape ? shape.reduce(1) { $0 * $1! } : nil
    }
    /// Byte size of one value for fixed-shape numeric fields.
    public var fixedByteCount: Int? {
        guard let count = fixedElementCount, let size = dtype.itemSize else { return nil }
        return count * size
    }

    /// The SQLite column type affinity this field is stored with.
    package var sqlType: String {
        guard isScalar else { return "BLOB" }
        switch dtype {
        case .bytes: return "BLOB"
        case .string: return "TEXT"
        case _ where dtype.isFloat: return "REAL"
        default: return "INTEGER"
        }
    }

    /// Human text for a shape, e.g. `[3, 32, 32]`, `[null]`, `scalar`.
    public var shapeDescription: String {
        isScalar ? "scalar" : "[" + shape.map { $0.map(String.init) ?? "null" }.joined(separator: ", ") + "]"
    }

    /// `uint8 [3, 32, 32]` or `int64`.
    public var typeDescription: String {
        isScalar ? dtype.rawValue : "\(dtype.rawValue) \(shapeDescription)"
    }
}
