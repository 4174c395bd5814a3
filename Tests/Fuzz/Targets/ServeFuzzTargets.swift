import Foundation
import MBDataClient

extension FuzzTarget {
    /// Bytes that cross the serve protocol: request parameters and bodies on the daemon's
    /// side, the stream's messages on the client's.
    static let serveTargets: [FuzzTarget] = [
        FuzzTarget("wire-decoder", "first byte: chunk size; then a batch stream body (56-byte headers, frames, end and error messages)") { data in
            try UntrustedStream.decode([UInt8](data.dropFirst()), chunkSize: Int(data.first ?? 0), frameLimit: 1 << 24)
        },
    ]
}
