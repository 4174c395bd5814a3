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
        FuzzTarget("npy-file", "a whole .npy file, header then every row, read as each kind of field in turn") { data in
            let bytes = [UInt8](data)
            var refused: (any Error)?
            for field in npyFields {
                do { try UntrustedInput.npyFile(bytes, field: field) } catch { refused = error }
            }
            if let refused { throw refused }
        },
        FuzzTarget("zip", "an .npz (zip) archive: end records, zip64, central directory, then every member inflated and CRC-checked") { data in
            try UntrustedInput.zipArchive([UInt8](data))
        },
        FuzzTarget("csv", "a CSV text, header row then records (quotes, line breaks, tensors, base64) against a schema of every field kind") { data in
            _ = try UntrustedInput.csvText([UInt8](data), schema: fuzzSchema)
        },
        FuzzTarget("token-source", "a token binary; the first byte picks the token width (bit 0) and the window length (1 + the rest mod 64)") { data in
            let bytes = [UInt8](data)
            guard let first = bytes.first else { return }
            _ = try UntrustedInput.tokenBinary(
                Array(bytes.dropFirst()), schema: tokenSchema, sequenceLength: 1 + Int(first >> 1) % 64,
                tokenByteWidth: first & 1 == 0 ? 2 : 4)
        },
    ]

    /// The fields an .npy file is read as: every conversion path of the column reader.
    static let npyFields = [
        Field(name: "id", dtype: .int64),
        Field(name: "score", dtype: .float32),
        Field(name: "half", dtype: .float16, shape: [2]),
        Field(name: "image", dtype: .uint8, shape: [2, 3]),
        Field(name: "text", dtype: .string),
        Field(name: "blob", dtype: .bytes),
    ]

    /// A token window of int16 ids (so uint16/uint32 tokens can overflow it) and its offset.
    static let tokenSchema: Schema = try! Schema(
        name: "tokens", fields: [Field(name: "tokens", dtype: .int16, shape: [nil]), Field(name: "offset", dtype: .int64)])
}
