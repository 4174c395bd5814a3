import Foundation
import MBData

extension FuzzTarget {
    /// The schema the record parsers are fuzzed against: every kind of field.
    static let fuzzSchema: Schema = {
        let json = """
            {"name": "fuzz", "key": "id", "fields": [
              {"name": "id", "dtype": "int64"},
              {"name": "label", "dtype": "uint8"},
              {"name": "score", "dtype": "float32"},
              {"name": "half", "dtype": "float16", "shape": [2]},
              {"name": "image", "dtype": "uint8", "shape": [2, 3]},
              {"name": "tokens", "dtype": "int32", "shape": [null]},
              {"name": "flag", "dtype": "bool"},
              {"name": "text", "dtype": "string"},
              {"name": "blob", "dtype": "bytes"}
            ]}
            """
        return try! Schema(json: Data(json.utf8))
    }()

    /// Source files read by `mbdata ingest`.
    static let ingestTargets: [FuzzTarget] = [
        FuzzTarget("npy-header", "the start of an .npy file: magic, version, header length, header dict") { data in
            try UntrustedInput.npyHeader([UInt8](data))
        },
        FuzzTarget("json-record", "one JSON Lines record against a schema of every field kind") { data in
            try UntrustedInput.jsonRecord([UInt8](data), schema: fuzzSchema)
        },
    ]
}
