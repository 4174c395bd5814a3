/// A Swift element type that maps to one ``DType``: what ``Tensor/init(name:shape:values:)``
/// builds a tensor from, the dtype following from the array's element type.
///
/// mbdata conforms `Float` (float32), `Double` (float64), `Int64`, `Int32`, `Int16`, `Int8`,
/// `UInt8` and `Bool` (one byte, 0 or 1).
public protocol TensorElement: Sendable {
    /// The dtype of a tensor of this element type; its item size is the type's size.
    static var dtype: DType { get }
}

extension TensorElement {
    /// The dtype of mbdata's conformances, by type.
    public static var dtype: DType {
        switch Self.self {
        case is Float.Type: .float32
        case is Double.Type: .float64
        case is Int64.Type: .int64
        case is Int32.Type: .int32
        case is Int16.Type: .int16
        case is Int8.Type: .int8
        case is UInt8.Type: .uint8
        case is Bool.Type: .bool
        default: preconditionFailure("\(Self.self) conforms to TensorElement without giving its dtype")
        }
    }
}

extension Float: TensorElement {}
extension Double: TensorElement {}
extension Int64: TensorElement {}
extension Int32: TensorElement {}
extension Int16: TensorElement {}
extension Int8: TensorElement {}
extension UInt8: TensorElement {}
extension Bool: TensorElement {}

extension Tensor {
    /// A tensor of `values` in row-major order, its dtype that of the element type: an
    /// inference model's outputs, a transform's new tensor.
    ///
    /// ```swift
    /// let pred = try Tensor(name: "pred", shape: [rows], values: classes)        // [Int64] → int64
    /// let prob = try Tensor(name: "prob", shape: [rows, 10], values: softmax)    // [Float] → float32
    /// ```
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/invalidArgument`` when a dimension
    ///   is negative or the shape's element count is not `values.count`.
    public init<Element: TensorElement>(name: String, shape: [Int], values: [Element]) throws {
        precondition(MemoryLayout<Element>.size == Element.dtype.itemSize, "\(Element.self) is not \(Element.dtype.rawValue)-sized")
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow else {
                throw MBDataError(.invalidArgument, "tensor \(name): shape \(shape) is not a valid shape", parameter: "shape")
            }
            count = product
        }
        guard count == values.count else {
            throw MBDataError(
                .invalidArgument, "tensor \(name): shape \(shape) holds \(count) elements, \(values.count) values given", parameter: "values")
        }
        #if _endian(big)
            var bytes = values.withUnsafeBytes { Array($0) }
            let size = MemoryLayout<Element>.size
            for start in stride(from: 0, to: bytes.count, by: size) { bytes[start..<start + size].reverse() }
        #else
            let bytes = values.withUnsafeBytes { Array($0) }
        #endif
        self.init(name: name, dtype: Element.dtype, shape: shape, bytes: bytes)
    }
}
