import Foundation
import MBData

/// `--save-weights` and `--compare`: the trained parameters as raw little-endian float32
/// (weights, then bias), and the comparison of two such files.
enum WeightsFile {
    static func save(weights: [Float], bias: [Float], to path: String) throws -> String {
        let bits = (weights + bias).map(\.bitPattern.littleEndian)
        let data = bits.withUnsafeBytes { Data($0) }
        try DurableFile.replace(path, with: data)
        return hash(data)
    }

    /// FNV-1a 64 of `data`, as 16 hex digits: equal files, equal hashes.
    static func hash(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 16).leftPadded(to: 16)
    }

    /// `max|Δw| … bitwise-equal yes|no` for two files of the same length; exits 2 otherwise.
    static func compare(_ first: String, _ second: String) -> String {
        guard let a = FileManager.default.contents(atPath: first), let b = FileManager.default.contents(atPath: second),
            a.count == b.count, a.count % 4 == 0
        else {
            print("digits-trainer: \(first) and \(second) are not two weight files of the same size")
            exit(2)
        }
        let x = floats(a)
        let y = floats(b)
        let maxDelta = zip(x, y).map { abs($0 - $1) }.max() ?? 0
        let maxMagnitude = x.map(abs).max() ?? 0
        return String(format: "max|Δw| %.3e (max|w| %.3f) bitwise-equal %@", Double(maxDelta), Double(maxMagnitude), a == b ? "yes" : "no")
    }

    private static func floats(_ data: Data) -> [Float] {
        stride(from: 0, to: data.count, by: 4).map { offset in
            let bits = data[data.startIndex + offset..<data.startIndex + offset + 4].enumerated()
                .reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            return Float(bitPattern: bits)
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
