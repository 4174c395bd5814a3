import MBData

/// The benchmark's do-nothing model: its outputs are computed once, before the run, for a
/// few batches' worth of rows of the output's schema; each call returns one of them as is
/// (no copy), so only the data path (reading batches, committing outputs) is measured.
struct PrecomputedModel: InferenceModel {
    /// Distinct output batches held; batch b returns number b mod `variants`.
    static let variants = 8

    private let outputs: [[String: Tensor]]
    private let batchSize: Int
    /// Real (non-padding) rows of the batches the model was called with.
    let rows = RowCounter()

    /// Outputs of `batchSize` rows for every field of `schema`.
    init(schema: Schema, batchSize: Int) {
        self.batchSize = batchSize
        outputs = (0..<Self.variants).map { variant in
            Dictionary(uniqueKeysWithValues: schema.fields.map { field in
                (field.name, Self.tensor(field, rows: batchSize, firstRow: variant * batchSize))
            })
        }
    }

    func infer(_ batch: Batch, context: TrainingContext) async throws -> [String: Tensor] {
        rows.add(batch.sampleCount)
        let chosen = outputs[batch.index % Self.variants]
        guard batch.rowCount != batchSize else { return chosen }
        // A drop-tail plan's last batch is shorter (the job pads by default, so this is rare).
        return chosen.mapValues { tensor in
            let rowBytes = tensor.byteCount / batchSize
            return Tensor(
                name: tensor.name, dtype: tensor.dtype, shape: [batch.rowCount] + tensor.shape.dropFirst(),
                bytes: Array(tensor.bytes.prefix(rowBytes * batch.rowCount)))
        }
    }

    /// `rows` values of `field`, element i of the whole run being a small number derived
    /// from i, encoded as the dtype's little-endian bytes.
    private static func tensor(_ field: Field, rows: Int, firstRow: Int) -> Tensor {
        let perRow = field.fixedElementCount ?? 1
        let count = rows * perRow
        let first = firstRow * perRow
        let bytes: [UInt8] =
            switch field.dtype {
            case .float32: littleEndian((0..<count).map { Float(Double((first + $0) % 1000) / 1000) }.map(\.bitPattern))
            case .float64: littleEndian((0..<count).map { Double((first + $0) % 1000) / 1000 }.map(\.bitPattern))
            case .int64: littleEndian((0..<count).map { Int64((first + $0) % 10) })
            case .int32: littleEndian((0..<count).map { Int32((first + $0) % 10) })
            case .bool: (0..<count).map { UInt8((first + $0) % 2) }
            default: [UInt8](repeating: 0, count: count * (field.dtype.itemSize ?? 1))
            }
        return Tensor(name: field.name, dtype: field.dtype, shape: [rows] + field.shape.map { $0 ?? 0 }, bytes: bytes)
    }

    private static func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    }
}
