import Foundation
import MBData

/// `samples` (default 1,024) samples of 4 KiB of seeded random bytes (incompressible), as
/// `blobs.mbdb` in `directory`: batches of 16 are 64 KiB, so a stream of 64 batches is far
/// more than the socket buffers hold and a stream's production waits for its consumer.
public func blobDataset(_ directory: TemporaryDirectory, samples: Int = 1_024) async throws -> String {
    let width = 4_096
    var state: UInt64 = 0x5EED
    var words = [UInt64](repeating: 0, count: samples * width / 8)
    for index in words.indices {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var mixed = (state ^ (state >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        words[index] = mixed ^ (mixed >> 31)
    }
    let data = words.withUnsafeBytes { Array($0) }
    var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(samples), \(width)), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let npy = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8) + data
    let source = directory.path("x.npy")
    try Data(npy).write(to: URL(fileURLWithPath: source))
    let path = directory.path("blobs.mbdb")
    let schema = try Schema(json: Data(#"{"name": "blobs", "fields": [{"name": "x", "dtype": "uint8", "shape": [4096]}]}"#.utf8))
    _ = try await Dataset.ingest(into: path, SourceSpec(paths: ["x=" + source]), schema: schema)
    return path
}
