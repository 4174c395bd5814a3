import Foundation
import MBDataTraining
import NIOCore

package enum UntrustedStream {
    /// A batch stream's body as the client decodes it, arriving in chunks of `chunkSize`
    /// bytes; each batch's frame is decoded with a limit. Throws `MBDataError` on bad input.
    package static func decode(_ body: [UInt8], chunkSize: Int, frameLimit: Int) throws {
        var decoder = WireDecoder(source: "input")
        var offset = 0
        while offset < body.count {
            let end = min(body.count, offset + max(1, chunkSize))
            decoder.append(ByteBuffer(bytes: body[offset..<end]))
            offset = end
            while let message = try decoder.next() {
                if case .batch(let batch, _) = message { _ = try? LZ4Frame.decompress(batch.frame, limit: frameLimit) }
            }
        }
    }
}
