import Foundation
import MBDataClient
import MBDataServer

extension FuzzTarget {
    /// Bytes that cross the serve protocol: request parameters and bodies on the daemon's
    /// side, the stream's messages on the client's.
    static let serveTargets: [FuzzTarget] = [
        FuzzTarget("wire-decoder", "first byte: chunk size; then a batch stream body (56-byte headers, frames, end and error messages)") { data in
            try UntrustedStream.decode([UInt8](data.dropFirst()), chunkSize: Int(data.first ?? 0), frameLimit: 1 << 24)
        },
        FuzzTarget("serve-query", "first byte: bit 0 set for a lease request; then a batch request's query string") { data in
            try UntrustedRequest.planQuery(String(decoding: data.dropFirst(), as: UTF8.self), leasing: (data.first ?? 0) & 1 == 1)
        },
        FuzzTarget("serve-ack", "first two bytes: batches per epoch (little-endian); then an ack body (JSON)") { data in
            let batches = Int(data.first ?? 0) | Int(data.dropFirst().first ?? 0) << 8
            try UntrustedRequest.ack(Data(data.dropFirst(2)), batchesPerEpoch: batches)
        },
        FuzzTarget("serve-cursor", "a cursor state document (JSON), as PUT /v1/cursors/{id} reads it") { data in
            try UntrustedRequest.cursorDocument(data)
        },
        FuzzTarget("serve-outputs", "first byte: bit 0 set for an LZ4 frame; then an outputs submission for a fixed output and batch") { data in
            try UntrustedRequest.outputs(Data(data.dropFirst()), lz4: (data.first ?? 0) & 1 == 1)
        },
    ]
}
