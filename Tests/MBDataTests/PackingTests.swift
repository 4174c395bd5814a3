import Foundation
import Testing

@testable import MBData

@Suite struct PackingTests {
    /// Lengths from a log-normal with median `median` and shape `sigma` (Box–Muller).
    static func logNormalLengths(count: Int, median: Double, sigma: Double, random: inout SeededGenerator) -> [Int] {
        (0..<count).map { _ in
            let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &random)
            let v = Double.random(in: 0..<1, using: &random)
            let normal = (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
            return max(1, Int((median * exp(sigma * normal)).rounded()))
        }
    }

    /// A random input: short, long (beyond the row) or empty samples, a random row and window.
    static func randomCase(_ random: inout SeededGenerator) throws -> (packer: SequencePacker, lengths: [Int]) {
        let rowLength = [1, 3, 8, 64, 512].randomElement(using: &random)!
        let count = Int.random(in: 0...300, using: &random)
        let lengths: [Int]
        switch Int.random(in: 0..<3, using: &random) {
        case 0: lengths = (0..<count).map { _ in Int.random(in: 0...rowLength, using: &random) }
        case 1: lengths = (0..<count).map { _ in Int.random(in: 0...(3 * rowLength + 2), using: &random) }
        default: lengths = logNormalLengths(count: count, median: Double(rowLength) / 4, sigma: 1.2, random: &random)
        }
        let packer = try SequencePacker(
            rowLength: rowLength, window: [1, 2, 7, 64, 1024].randomElement(using: &random)!,
            overlong: OverlongPolicy.allCases.randomElement(using: &random)!)
        return (packer, lengths)
    }

    @Test func packingLosesAndRepeatsNoToken() throws {
        var random = SeededGenerator(seed: 11)
        for _ in 0..<200 {
            let (packer, lengths) = try Self.randomCase(&random)
            let packed = packer.pack(lengths)
            var covered = [[Range<Int>]](repeating: [], count: lengths.count)
            for row in packed.rows {
                #expect(!row.segments.isEmpty && row.tokenCount <= packer.rowLength)
                for segment in row.segments {
                    #expect(segment.length >= 1 && segment.length <= packer.rowLength)
                    #expect(segment.offset % packer.rowLength == 0)
                    covered[segment.sample].append(segment.offset..<segment.offset + segment.length)
                }
            }
            var statistics = PackingStatistics(rowLength: packer.rowLength)
            for (sample, length) in lengths.enumerated() {
                let pieces = covered[sample].sorted { $0.lowerBound < $1.lowerBound }
                statistics.samples += 1
                if length > packer.rowLength && packer.overlong == .drop {
                    #expect(pieces.isEmpty, "a dropped sample has no segment")
                    statistics.droppedSamples += 1
                    statistics.droppedTokens += length
                    continue
                }
                if length == 0 { statistics.emptySamples += 1 }
                if length > packer.rowLength { statistics.splitSamples += 1 }
                let expected = stride(from: 0, to: length, by: packer.rowLength).map { $0..<min($0 + packer.rowLength, length) }
                #expect(pieces == expected, "sample \(sample) of \(length) tokens is covered exactly once")
                statistics.tokens += length
            }
            statistics.rows = packed.rows.count
            #expect(packed.statistics == statistics)
        }
    }

    @Test func firstFitOverAWindowGivesTheDocumentedLayout() throws {
        let lengths = [3, 9, 2, 0, 5]
        let split = try SequencePacker(rowLength: 4, window: 8).pack(lengths)
        let s = PackedSegment.init(sample:offset:length:)
        #expect(split.rows.map(\.segments) == [[s(0, 0, 3), s(1, 8, 1)], [s(1, 0, 4)], [s(1, 4, 4)], [s(2, 0, 2), s(4, 4, 1)], [s(4, 0, 4)]])
        #expect(split.statistics.efficiency == 19.0 / 20 && split.statistics.splitSamples == 2 && split.statistics.emptySamples == 1)
        let dropped = try SequencePacker(rowLength: 4, window: 8, overlong: .drop).pack(lengths)
        #expect(dropped.rows.map(\.segments) == [[s(0, 0, 3)], [s(2, 0, 2)]])
        #expect(dropped.statistics.droppedSamples == 2 && dropped.statistics.droppedTokens == 14 && dropped.statistics.paddingTokens == 3)
        let windowed = try SequencePacker(rowLength: 4, window: 2).pack([3, 1, 1])
        #expect(windowed.rows.map(\.segments) == [[s(0, 0, 3), s(1, 0, 1)], [s(2, 0, 1)]], "nothing crosses a window")
    }

    @Test func segmentIDsAndPositionsMatchTheLayout() throws {
        var random = SeededGenerator(seed: 12)
        for _ in 0..<60 {
            let (packer, lengths) = try Self.randomCase(&random)
            let rows = packer.pack(lengths).rows
            let tensors = try PackedTensors.tensors(field: "tokens", rows: rows, rowLength: packer.rowLength, pad: Int32(-1)) { sample in
                (0..<lengths[sample]).map { Int32(sample * 10_000 + $0) }
            }
            #expect(tensors.map(\.name) == ["tokens", "segment_ids", "positions"])
            #expect(tensors.allSatisfy { $0.shape == [rows.count, packer.rowLength] && ($0.name == "tokens" || $0.dtype == .int32) })
            let (tokens, ids, positions) = (tensors[0].int64s(), tensors[1].int64s(), tensors[2].int64s())
            for (rowIndex, row) in rows.enumerated() {
                var column = 0
                for (segmentIndex, segment) in row.segments.enumerated() {
                    for position in 0..<segment.length {
                        let cell = rowIndex * packer.rowLength + column
                        #expect(ids[cell] == Int64(segmentIndex + 1) && positions[cell] == Int64(position))
                        #expect(tokens[cell] == Int64(segment.sample * 10_000 + segment.offset + position))
                        column += 1
                    }
                }
                for cell in rowIndex * packer.rowLength + column..<(rowIndex + 1) * packer.rowLength {
                    #expect(ids[cell] == 0 && positions[cell] == 0 && tokens[cell] == -1, "padding")
                }
            }
            let perSegmentIDs = try PackedTensors.perSegment(name: "_id", rows: rows, pad: Int64(-1)) { Int64($0.sample) }
            let width = max(1, rows.map(\.segments.count).max() ?? 0)
            #expect(perSegmentIDs.shape == [rows.count, width])
            #expect(perSegmentIDs.int64s() == rows.flatMap { row in row.segments.map { Int64($0.sample) } + Array(repeating: -1, count: width - row.segments.count) })
        }
    }

    @Test func storedBytesPackLikeTypedValues() throws {
        let lengths = [5, 1, 7, 2]
        let rows = try SequencePacker(rowLength: 6).pack(lengths).rows
        let typed = try PackedTensors.tensors(field: "tokens", rows: rows, rowLength: 6, pad: Int64(-7)) { sample in
            (0..<lengths[sample]).map { Int64(sample * 100 + $0) }
        }
        let fromBytes = try PackedTensors.tensors(
            field: "tokens", dtype: .int64, rows: rows, rowLength: 6, padding: try Tensor(name: "p", shape: [1], values: [Int64(-7)]).bytes
        ) { sample in try Tensor(name: "t", shape: [lengths[sample]], values: (0..<lengths[sample]).map { Int64(sample * 100 + $0) }).bytes }
        #expect(zip(typed, fromBytes).allSatisfy { $0.name == $1.name && $0.dtype == $1.dtype && $0.shape == $1.shape && $0.bytes == $1.bytes })
        #expect(throws: MBDataError.self) { try PackedTensors.tensors(field: "text", dtype: .string, rows: rows, rowLength: 6) { _ in [] } }
        #expect(throws: MBDataError.self) { try PackedTensors.tensors(field: "t", dtype: .int32, rows: rows, rowLength: 6, padding: [0]) { _ in [] } }
    }

    @Test func aSampleShorterThanItsSegmentIsRefused() throws {
        let rows = try SequencePacker(rowLength: 4).pack([3]).rows
        #expect(throws: MBDataError.self) {
            try PackedTensors.tensors(field: "tokens", rows: rows, rowLength: 4, pad: Int32(0)) { _ in [Int32(1), 2] }
        }
    }

    @Test func restartingAtAnyRowEqualsTheUninterruptedPacking() throws {
        var random = SeededGenerator(seed: 13)
        for _ in 0..<60 {
            let (packer, lengths) = try Self.randomCase(&random)
            let full = packer.pack(lengths).rows
            let read = { (range: Range<Int>) in Array(lengths[range]) }
            for _ in 0..<5 {
                let row = Int.random(in: 0...full.count, using: &random)
                let count = Int.random(in: 1...20, using: &random)
                let cursor = try #require(packer.cursor(atRow: row, sampleCount: lengths.count, lengths: read))
                #expect(cursor.row == row)
                let decoded = try JSONDecoder().decode(PackingCursor.self, from: JSONEncoder().encode(cursor))
                let resumed = packer.rows(from: decoded, count: count, sampleCount: lengths.count, lengths: read)
                #expect(resumed.rows == Array(full[row..<min(row + count, full.count)]))
                #expect(resumed.next.row == row + resumed.rows.count)
            }
            var cursor = PackingCursor.start
            var streamed: [PackedRow] = []
            while true {
                let step = packer.rows(from: cursor, count: Int.random(in: 1...9, using: &random), sampleCount: lengths.count, lengths: read)
                if step.rows.isEmpty { break }
                streamed += step.rows
                cursor = step.next
            }
            #expect(streamed == full, "row by row through cursors equals packing at once")
            #expect(packer.cursor(atRow: full.count + 1, sampleCount: lengths.count, lengths: read) == nil)
        }
    }

    @Test func theDefaultWindowPacksLogNormalLengthsAbove95Percent() throws {
        var random = SeededGenerator(seed: 14)
        let lengths = Self.logNormalLengths(count: 20_000, median: 400, sigma: 1, random: &random)
        let statistics = try SequencePacker(rowLength: 2048).pack(lengths).statistics
        print("packing efficiency, log-normal median 400 sigma 1, L=2048, W=\(SequencePacker.defaultWindow): \(statistics.efficiency)")
        #expect(statistics.efficiency >= 0.95)
        #expect(statistics.tokens == lengths.reduce(0, +))
    }

    @Test func theKeyNamesEveryParameterThatChangesARow() throws {
        let packers = [
            try SequencePacker(rowLength: 2048), try SequencePacker(rowLength: 2047), try SequencePacker(rowLength: 2048, window: 512),
            try SequencePacker(rowLength: 2048, overlong: .drop),
        ]
        #expect(Set(packers.map(\.key)).count == packers.count)
        #expect(try SequencePacker(rowLength: 2048).key == packers[0].key)
    }

    @Test func invalidPackersAreRefused() {
        #expect(throws: MBDataError.self) { try SequencePacker(rowLength: 0) }
        #expect(throws: MBDataError.self) { try SequencePacker(rowLength: 8, window: 0) }
    }
}
