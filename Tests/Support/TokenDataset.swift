import Foundation
import MBData

/// A dataset of variable-length token sequences for packing tests: `count` samples keyed
/// `s0`, `s1`, … with a `label` and 0 through 149 `int32` tokens (some longer than a row of
/// 64), each token naming its sample (index × 1000 + place).
public enum TokenDataset {
    /// The schema: key `name` (string), `label` int64, `tokens` int32 `[null]`.
    public static let schemaJSON = """
        {"name": "tokens", "key": "name", "fields": [
          {"name": "name", "dtype": "string"},
          {"name": "label", "dtype": "int64"},
          {"name": "tokens", "dtype": "int32", "shape": [null]}
        ]}
        """

    /// Tokens of sample `index` (0-based; its `_id` is index + 1).
    public static func tokens(_ index: Int) -> [Int32] {
        (0..<(index * 7919 % 150)).map { Int32(index * 1000 + $0) }
    }

    /// The dataset of `count` samples ingested at `directory/tokens.mbdb`; returns its path.
    public static func make(in directory: TemporaryDirectory, count: Int = 300) async throws -> String {
        let lines = (0..<count).map { index in
            #"{"name": "s\#(index)", "label": \#(index), "tokens": [\#(tokens(index).map(String.init).joined(separator: ","))]}"#
        }
        let source = try directory.write("tokens.jsonl", lines.joined(separator: "\n") + "\n")
        let path = directory.path("tokens.mbdb")
        _ = try await Dataset.ingest(into: path, SourceSpec(paths: [source]), schema: try Schema(json: Data(schemaJSON.utf8)))
        return path
    }
}
