import Foundation
import Testing

@_exported import MBDataTestSupport
@testable import MBData

func schema(_ json: String) throws -> Schema { try Schema(json: Data(json.utf8)) }

/// Builds `.npy` files in code: header v1 then raw little-endian data.
enum NPY {
    static func file(descr: String, shape: [Int], data: [UInt8], fortran: Bool = false, version: UInt8 = 1) -> [UInt8] {
        let shapeText = "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
        let prefixLength = version == 1 ? 10 : 12
        while (prefixLength + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let length = header.utf8.count
        if version == 1 {
            bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        } else {
            bytes += [UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), UInt8((length >> 16) & 0xFF), UInt8(length >> 24)]
        }
        return bytes + Array(header.utf8) + data
    }

    static func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    }

    static func float32(_ values: [Float]) -> [UInt8] { littleEndian(values.map(\.bitPattern)) }
    static func float64(_ values: [Double]) -> [UInt8] { littleEndian(values.map(\.bitPattern)) }
}

extension MBDataError {
    /// For `#expect(throws:)` closures that check code and message parts at once.
    func matches(_ code: Code, _ parts: String...) -> Bool {
        self.code == code && parts.allSatisfy { description.contains($0) }
    }
}

/// Ingests and returns the single summary.
@discardableResult
func ingest(
    _ dataset: Dataset, _ paths: [String], schema: Schema? = nil, options: IngestOptions = IngestOptions(),
    format: SourceFormat? = nil, sequenceLength: Int? = nil, tokenByteWidth: Int = 2
) async throws -> IngestSummary {
    let summaries = try await dataset.ingest(
        SourceSpec(paths: paths, format: format, sequenceLength: sequenceLength, tokenByteWidth: tokenByteWidth),
        schema: schema, options: options)
    return try #require(summaries.first)
}

/// The error an ingest throws, or a test failure if it succeeds or throws something else.
func ingestError(
    _ dataset: Dataset, _ paths: [String], schema: Schema? = nil, options: IngestOptions = IngestOptions(),
    format: SourceFormat? = nil, sourceLocation: SourceLocation = #_sourceLocation
) async -> MBDataError? {
    do {
        try await ingest(dataset, paths, schema: schema, options: options, format: format)
        Issue.record("expected the ingest to fail", sourceLocation: sourceLocation)
        return nil
    } catch let error as MBDataError {
        return error
    } catch {
        Issue.record("expected MBDataError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

let tabularSchemaJSON = """
    {"name": "tabular", "key": "id", "fields": [
      {"name": "id", "dtype": "int64"},
      {"name": "features", "dtype": "float32", "shape": [4]},
      {"name": "label", "dtype": "int64"}]}
    """
