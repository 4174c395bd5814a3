/// A decoded batch as trainers see it: tensors by name (`batch["image"]`), the sample ids,
/// and where it sits in the plan.
public struct Batch: Sendable {
    /// The epoch the batch belongs to.
    public let epoch: Int
    /// The global batch index within the epoch.
    public let index: Int
    /// The rank whose slice of the global batch this is.
    public let rank: Int
    /// Every tensor, by name; ``set(_:)`` replaces one.
    public private(set) var tensors: [String: Tensor]

    /// Decodes a safetensors buffer; the tensors view its bytes without copying.
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/corruptData`` when the buffer is not
    ///   valid safetensors, ``MBDataError/Code/malformedRecord`` for a dtype mbdata does not
    ///   use (`F8_*`, `U16`, `U32`, `U64`).
    public init(epoch: Int, index: Int, rank: Int, safetensors buffer: [UInt8]) throws {
        self.epoch = epoch
        self.index = index
        self.rank = rank
        tensors = try Self.tensors(safetensors: buffer)
    }

    /// The tensors of a safetensors buffer, by name, viewing its bytes; a dtype mbdata does not
    /// use is `.malformedRecord` with the tensor's name as `field`.
    package static func tensors(safetensors buffer: [UInt8]) throws -> [String: Tensor] {
        let header = try SafetensorsReader(buffer)
        var tensors: [String: Tensor] = [:]
        for (name, info) in header.tensors {
            guard let dtype = Tensor.dtype(safetensorsName: info.dtype) else {
                throw MBDataError(.malformedRecord, "tensor \(name.prefix(64)) has unsupported dtype \(info.dtype)", field: String(name.prefix(64)))
            }
            tensors[name] = Tensor(name: name, dtype: dtype, shape: info.shape, storage: buffer, range: info.range)
        }
        return tensors
    }

    /// The tensor called `name`, or nil.
    public subscript(_ name: String) -> Tensor? { tensors[name] }

    /// Sample ids, -1 for padding rows.
    public var ids: [Int64] { tensors["_id"]?.int64s() ?? [] }
    /// Rows, padding included.
    public var rowCount: Int { tensors["_id"]?.shape.first ?? 0 }
    /// Real (non-padding) samples.
    public var sampleCount: Int { ids.filter { $0 >= 0 }.count }

    /// Replaces or adds a tensor (batch transforms).
    public mutating func set(_ tensor: Tensor) { tensors[tensor.name] = tensor }
}
