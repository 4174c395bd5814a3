import Foundation
import Testing

@testable import MBData

@Suite struct TensorValuesTests {
    @Test func theDtypeFollowsTheElementTypeAndTheBytesAreLittleEndian() throws {
        let floats = try Tensor(name: "prob", shape: [2, 2], values: [Float(1), 2, -0.5, 3])
        #expect(floats.dtype == .float32 && floats.shape == [2, 2] && floats.floats() == [1, 2, -0.5, 3])
        #expect(floats.bytes.prefix(4) == [0x00, 0x00, 0x80, 0x3F], "1.0 as little-endian float32")
        let doubles = try Tensor(name: "d", shape: [2], values: [0.25, -8.0])
        #expect(doubles.dtype == .float64 && doubles.doubles() == [0.25, -8])
        let longs = try Tensor(name: "pred", shape: [3], values: [Int64(-1), 7, Int64.max])
        #expect(longs.dtype == .int64 && longs.int64s() == [-1, 7, Int64.max])
        let ints = try Tensor(name: "i", shape: [2], values: [Int32(-3), 300])
        #expect(ints.dtype == .int32 && ints.int64s() == [-3, 300] && ints.byteCount == 8)
        let bytes = try Tensor(name: "u", shape: [1, 3], values: [UInt8(0), 128, 255])
        #expect(bytes.dtype == .uint8 && bytes.bytes == [0, 128, 255])
        let flags = try Tensor(name: "b", shape: [3], values: [true, false, true])
        #expect(flags.dtype == .bool && flags.bytes == [1, 0, 1])
        let scalar = try Tensor(name: "s", shape: [], values: [Int16(-2)])
        #expect(scalar.dtype == .int16 && scalar.int64s() == [-2])
    }

    @Test func aShapeThatDoesNotHoldTheValuesIsRefused() {
        for shape in [[3], [2, 3], [-1, -2], [Int.max, 2]] {
            #expect(throws: MBDataError.self) { try Tensor(name: "x", shape: shape, values: [Float(1), 2, 3, 4]) }
        }
        #expect((try? Tensor(name: "x", shape: [0, 10], values: [Float]()))?.shape == [0, 10])
    }
}
