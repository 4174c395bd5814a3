/// One named, typed value of every sample.
public struct Field: Hashable, Codable, Sendable {
    public var name: String
    public var dtype: DType
    /// Dimensions; empty for a scalar; `nil` marks a variable dimension.
    public var shape: [Int?]
    public var description: String?

    public init(name: String, dtype: DType, shape: [Int?] = [], description: String? = nil) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.description = description
    }

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
    public var sqlType: String {
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
