/// One field of one sample as it is stored in SQLite.
///
/// Scalars of integer dtypes and `bool` are ``integer``; scalar floats are ``real``;
/// `string` is ``text``; `bytes` and every tensor are ``blob`` (tensors little-endian, row-major).
public enum SampleValue: Hashable, Sendable {
    case integer(Int64)
    case real(Double)
    case text(String)
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
