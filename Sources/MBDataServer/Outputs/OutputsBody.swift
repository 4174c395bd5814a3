import Foundation
import HTTPTypes
import MBData

/// The body of `POST /v1/cursors/{id}/outputs` (schemas/serve-protocol.md §8), decoded: a
/// safetensors buffer, or one LZ4 frame holding it, read into tensors by name. Whether the
/// tensors fit the output and the batch is the library's check (`commitOutputs`).
package enum OutputsBody {
    /// How the body is sent, by its `Content-Type`.
    package enum Encoding: Sendable {
        /// `application/vnd.mbdata.safetensors`
        case safetensors
        /// `application/vnd.mbdata.safetensors+lz4`
        case lz4

        /// The encoding a `Content-Type` names (parameters after `;` ignored).
        package init(contentType: String?) throws {
            let type = contentType?.split(separator: ";", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces).lowercased()
            switch type {
            case "application/vnd.mbdata.safetensors": self = .safetensors
            case "application/vnd.mbdata.safetensors+lz4": self = .lz4
            default:
                throw ServeError(
                    .badRequest, "invalid_body",
                    "outputs are sent as Content-Type application/vnd.mbdata.safetensors or application/vnd.mbdata.safetensors+lz4, got \(type.map { "\"\($0.prefix(80))\"" } ?? "none")"
                )
            }
        }
    }

    /// The lease an `MBData-Lease` header names.
    package static func lease(_ header: String?) throws -> UInt64 {
        guard let header, let lease = UInt64(header.trimmingCharacters(in: .whitespaces)), lease > 0 else {
            throw ServeError(
                .badRequest, "invalid_body",
                "an outputs submission names its batch's lease in the MBData-Lease header (a decimal integer), got \(header.map { "\"\($0.prefix(40))\"" } ?? "none")"
            )
        }
        return lease
    }

    /// The tensors of a body of at most `limit` bytes — and, sent as an LZ4 frame, whose
    /// content is at most `limit` bytes: `413 body_too_large` beyond, `400 invalid_body` when
    /// it is not one valid frame or safetensors buffer, `400 invalid_outputs` for a tensor of a
    /// dtype no output field has. Blocking (decompression): call it from a worker thread.
    package static func tensors(_ body: [UInt8], encoding: Encoding, limit: Int) throws -> [String: Tensor] {
        guard body.count <= limit else { throw tooLarge(limit) }
        let buffer: [UInt8]
        switch encoding {
        case .safetensors:
            buffer = body
        case .lz4:
            do {
                let size = try body.withUnsafeBytes { try LZ4Frame.contentSize(of: $0) }
                guard size <= limit else { throw tooLarge(limit) }
                buffer = try LZ4Frame.decompress(body, limit: limit)
            } catch let error as MBDataError {
                throw ServeError(.badRequest, "invalid_body", "the body is not one valid LZ4 frame: \(error.message)")
            }
        }
        do {
            return try Batch.tensors(safetensors: buffer)
        } catch let error as MBDataError where error.code == .malformedRecord {
            throw ServeError(.badRequest, "invalid_outputs", "\(error.message), which no output field has", field: error.field)
        } catch let error as MBDataError {
            throw ServeError(.badRequest, "invalid_body", "the outputs are not a valid safetensors buffer: \(error.message)")
        }
    }

    /// `413 body_too_large` for a submission over `limit` bytes.
    static func tooLarge(_ limit: Int) -> ServeError {
        ServeError(.contentTooLarge, "body_too_large", "outputs submissions are limited to \(limit) bytes, also inside their LZ4 frame (--max-output-bytes)")
    }
}
