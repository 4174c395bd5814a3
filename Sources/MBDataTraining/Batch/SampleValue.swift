/// One field of one sample as it is stored in SQLite.
///
/// Scalars of integer dtypes and `bool` are ``integer(_:)``; scalar floats are ``real(_:)``;
/// `string` is ``text(_:)``; `bytes` and every tensor are ``blob(_:)`` (tensors
/// little-endian, row-major).
public enum SampleValue: Hashable, Sendable {
    /// An integer scalar, or a `bool` scalar (0 or 1).
    case integer(Int64)
    /// A float scalar, already rounded to its dtype's precision.
    case real(Double)
    /// A `string` value.
    case text(String)
    /// A `bytes` value, or a tensor's elements, little-endian and row-major.
    case blob([UInt8])

    /// Payload bytes this value adds to the store (used for MB/s figures).
    package var payloadByteCount: Int {
        switch self {
        case .integer, .real: 8
        case .text(let s): s.utf8.count
        case .blob(let b): b.count
        }
    }
}
