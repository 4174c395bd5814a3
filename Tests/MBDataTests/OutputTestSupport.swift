import Foundation
import GRDB
import Testing

@testable import MBData

/// A small dataset for output tests: `train` samples with ids 1…train, then `val` samples,
/// each with an integer label; and the output schema `preds` is created with.
struct OutputFixture {
    let dir: TemporaryDirectory
    let dataset: Dataset

    static let sampleSchema = """
        {"name": "small", "key": "key", "fields": [
          {"name": "key", "dtype": "int64"}, {"name": "label", "dtype": "int64"}]}
        """
    /// pred int64, prob float32[3], score float16, flag bool, grid int16[2, 2].
    static let outputSchema = """
        {"name": "preds", "fields": [
          {"name": "pred", "dtype": "int64"}, {"name": "prob", "dtype": "float32", "shape": [3]},
          {"name": "score", "dtype": "float16"}, {"name": "flag", "dtype": "bool"},
          {"name": "grid", "dtype": "int16", "shape": [2, 2]}]}
        """

    init(train: Int = 10, val: Int = 7, output: String? = "preds") async throws {
        dir = try TemporaryDirectory()
        dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await addSamples(keys: 0..<train, split: "train")
        try await addSamples(keys: train..<(train + val), split: "val")
        if let output { try await dataset.createOutput(output, schema: try schema(Self.outputSchema)) }
    }

    /// Ingests samples with the given keys (label = key % 3) into `split`.
    func addSamples(keys: Range<Int>, split: String) async throws {
        guard !keys.isEmpty else { return }
        let lines = keys.map { "{\"key\": \($0), \"label\": \($0 % 3)}" }.joined(separator: "\n")
        let file = try dir.write("\(split)-\(keys.lowerBound).jsonl", lines + "\n")
        var options = IngestOptions()
        options.split = split
        try await ingest(dataset, [file], schema: try schema(Self.sampleSchema), options: options)
    }

    /// The inference parameters the tests use: no shuffle, padded tail.
    static func parameters(batchSize: Int = 4, split: String? = "train", world: Int = 1) -> PlanParameters {
        PlanParameters(seed: 0, batchSize: batchSize, world: world, tail: .pad, split: split, shuffle: false)
    }

    /// Runs SQL on the dataset's writer (to plant damage or read back exactly).
    func sql(_ text: String) async throws {
        try await dataset.pool.write { db in try db.execute(sql: text) }
    }

    func count(_ sql: String) async throws -> Int {
        try await dataset.pool.read { db in try Int.fetchOne(db, sql: sql) ?? -1 }
    }
}

/// The outputs a model would return for rows with these ids (padding rows get zeros):
/// pred = id % 3, prob = [id, 0.5, -id], score = id / 4, flag = id odd, grid = [[id, -id], [1, 2]].
enum PredsOutputs {
    static func tensors(for ids: [Int64?], includeIDs: Bool = true) -> [String: Tensor] {
        let rows = ids.count
        let values = ids.map { $0 ?? 0 }
        var result: [String: Tensor] = [
            "pred": Tensor(name: "pred", dtype: .int64, shape: [rows], bytes: NPY.littleEndian(values.map { $0 % 3 })),
            "prob": Tensor(name: "prob", dtype: .float32, shape: [rows, 3], bytes: NPY.float32(values.flatMap(prob))),
            "score": Tensor(
                name: "score", dtype: .float16, shape: [rows], bytes: NPY.littleEndian(values.map { Float16(Float($0) / 4).bitPattern })),
            "flag": Tensor(name: "flag", dtype: .bool, shape: [rows], bytes: values.map { UInt8($0 & 1) }),
            "grid": Tensor(name: "grid", dtype: .int16, shape: [rows, 2, 2], bytes: NPY.littleEndian(values.flatMap(grid))),
        ]
        if includeIDs {
            result["_id"] = Tensor(name: "_id", dtype: .int64, shape: [rows], bytes: NPY.littleEndian(ids.map { $0 ?? -1 }))
        }
        return result
    }

    static func prob(_ id: Int64) -> [Float] { [Float(id), 0.5, -Float(id)] }
    static func grid(_ id: Int64) -> [Int16] { [Int16(id), -Int16(id), 1, 2] }
}
