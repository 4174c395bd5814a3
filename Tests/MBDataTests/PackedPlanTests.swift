import Foundation
import Testing

@testable import MBData

/// Packed plans over a real dataset: every token of an epoch once, the same rows for every
/// world and seek point, packed batches a safetensors reader reads.
@Suite struct PackedPlanTests {
    static let schemaJSON = """
        {"name": "p", "fields": [
          {"name": "label", "dtype": "int64"},
          {"name": "tokens", "dtype": "int32", "shape": [null]}
        ]}
        """
    static let sampleCount = 300

    /// Tokens of sample `index` (0-based, id index + 1): 0 through 149 values, some longer
    /// than the rows below, each value naming its sample and place.
    static func tokens(_ index: Int) -> [Int32] {
        (0..<(index * 7919 % 150)).map { Int32(index * 1000 + $0) }
    }

    static func dataset() async throws -> (TemporaryDirectory, Dataset) {
        let dir = try TemporaryDirectory()
        let lines = (0..<sampleCount).map { index in
            #"{"label": \#(index), "tokens": [\#(tokens(index).map(String.init).joined(separator: ","))]}"#
        }
        let source = try dir.write("p.jsonl", lines.joined(separator: "\n") + "\n")
        let dataset = try Dataset(path: dir.path("p.mbdb"), create: true)
        try await ingest(dataset, [source], schema: try schema(schemaJSON))
        return (dir, dataset)
    }

    static func parameters(world: Int = 1, tail: TailPolicy = .pad) -> PlanParameters {
        PlanParameters(seed: 7, batchSize: 4, world: world, tail: tail)
    }

    static func spec(overlong: OverlongPolicy = .split) throws -> PackingSpec {
        try PackingSpec(field: "tokens", rowLength: 64, window: 16, overlong: overlong)
    }

    static func int32Values(_ name: String, _ reader: SafetensorsReader, _ buffer: [UInt8]) -> [Int32] {
        let bytes = Array(buffer[reader.tensors[name]!.range])
        return stride(from: 0, to: bytes.count, by: 4).map { at in
            Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * $1) })
        }
    }

    @Test func lengthsComeFromTheStoreAndTheFingerprintNamesThePacking() async throws {
        let (dir, dataset) = try await Self.dataset()
        defer { withExtendedLifetime(dir) {} }
        let plan = try await dataset.packedPlan(Self.parameters(), packing: Self.spec())
        #expect(plan.lengths == (0..<Self.sampleCount).map { Self.tokens($0).count })
        let unpacked = try await dataset.plan(Self.parameters())
        #expect(plan.base.fingerprint == unpacked.fingerprint, "packing leaves the unpacked fingerprint alone")
        #expect(plan.fingerprint != unpacked.fingerprint)
        let dropping = try await dataset.packedPlan(Self.parameters(), packing: Self.spec(overlong: .drop))
        #expect(dropping.fingerprint != plan.fingerprint)
        #expect(try await dataset.packedPlan(Self.parameters(), packing: Self.spec()).fingerprint == plan.fingerprint)
        await #expect { try await dataset.packedPlan(Self.parameters(), packing: PackingSpec(field: "label", rowLength: 8)) } throws: {
            ($0 as? MBDataError)?.matches(.invalidArgument, "label") == true
        }
    }

    @Test(arguments: [0, 1, 2])
    func anEpochShowsEveryTokenOnceAndSeeksMatchOnePass(epoch: Int) async throws {
        let (dir, dataset) = try await Self.dataset()
        defer { withExtendedLifetime(dir) {} }
        let plan = try await dataset.packedPlan(Self.parameters(), packing: Self.spec())
        let layout = plan.layout(epoch: epoch)
        let whole = plan.spec.packer.pack(plan.orderedLengths(epoch: epoch, 0..<Self.sampleCount))
        #expect(layout.rowCount == whole.rows.count)
        #expect(layout.statistics == whole.statistics)
        let batches = plan.batchesPerEpoch(layout)
        #expect(batches == (whole.rows.count + 3) / 4)
        // Batch by batch, each seek repacks one window, yet the rows are the one-pass rows.
        let rows = (0..<batches).flatMap { plan.rows(layout, batch: $0) }
        #expect(Array(rows.prefix(whole.rows.count)) == whole.rows)
        #expect(rows.dropFirst(whole.rows.count).allSatisfy { $0.segments.isEmpty })
        var pieces: [Int: [PackedSegment]] = [:]
        for segment in rows.flatMap(\.segments) { pieces[plan.sampleIndex(epoch: epoch, position: segment.sample), default: []].append(segment) }
        for index in 0..<Self.sampleCount {
            let covered = (pieces[index] ?? []).sorted { $0.offset < $1.offset }
            var next = 0
            for piece in covered {
                #expect(piece.offset == next, "sample \(index): no token lost or repeated")
                next += piece.length
            }
            #expect(next == Self.tokens(index).count)
        }
    }

    @Test func everyWorldSeesTheSameRows() async throws {
        let (dir, dataset) = try await Self.dataset()
        defer { withExtendedLifetime(dir) {} }
        let single = try await dataset.packedPlan(Self.parameters(world: 1, tail: .drop), packing: Self.spec())
        let layout = single.layout(epoch: 1)
        let reference = (0..<single.batchesPerEpoch(layout)).flatMap { single.rows(layout, batch: $0) }
        #expect(reference.count == layout.rowCount / 4 * 4, "the tail rows are dropped")
        for world in [2, 4] {
            let plan = try await dataset.packedPlan(Self.parameters(world: world, tail: .drop), packing: Self.spec())
            let split = (0..<plan.batchesPerEpoch(layout)).flatMap { batch in (0..<world).flatMap { plan.rows(layout, batch: batch, rank: $0) } }
            #expect(split == reference, "world \(world)")
        }
    }

    @Test func aPackedBatchIsSafetensorsWithSegmentsPositionsAndPerSegmentFields() async throws {
        let (dir, dataset) = try await Self.dataset()
        defer { withExtendedLifetime(dir) {} }
        let plan = try await dataset.packedPlan(Self.parameters(), packing: Self.spec())
        let producer = try await PackedBatchProducer(dataset: dataset, plan: plan)
        let item = PlanItem(epoch: 0, batch: 2, rank: 0)
        let (buffer, segments) = try producer.collated(item)
        let reader = try SafetensorsReader(buffer)
        #expect(reader.metadata["packing"] == plan.spec.key)
        #expect(reader.tensors["tokens"]?.shape == [4, 64])
        #expect(reader.tensors["tokens"]?.dtype == "I32")
        #expect(reader.tensors["segment_ids"]?.shape == [4, 64])
        #expect(reader.tensors["positions"]?.shape == [4, 64])
        let rows = plan.rows(producer.layout(epoch: 0), batch: 2)
        let width = rows.map(\.segments.count).max()!
        #expect(segments == rows.reduce(0) { $0 + $1.segments.count })
        #expect(reader.tensors["_id"]?.shape == [4, width])
        #expect(reader.tensors["label"]?.shape == [4, width])
        let tokens = Self.int32Values("tokens", reader, buffer)
        let segmentIDs = Self.int32Values("segment_ids", reader, buffer)
        let positions = Self.int32Values("positions", reader, buffer)
        let ids = try reader.int64Values("_id", in: buffer)
        let labels = try reader.int64Values("label", in: buffer)
        for (r, row) in rows.enumerated() {
            var column = 0
            for (j, segment) in row.segments.enumerated() {
                let index = plan.sampleIndex(epoch: 0, position: segment.sample)
                #expect(ids[r * width + j] == plan.base.ids[index])
                #expect(labels[r * width + j] == Int64(index))
                let expected = Array(Self.tokens(index)[segment.offset..<segment.offset + segment.length])
                #expect(Array(tokens[r * 64 + column..<r * 64 + column + segment.length]) == expected)
                #expect(Array(segmentIDs[r * 64 + column..<r * 64 + column + segment.length]) == Array(repeating: Int32(j + 1), count: segment.length))
                #expect(Array(positions[r * 64 + column..<r * 64 + column + segment.length]) == (0..<Int32(segment.length)).map { $0 })
                column += segment.length
            }
            #expect(segmentIDs[r * 64 + column..<r * 64 + 64].allSatisfy { $0 == 0 }, "padding has segment id 0")
            #expect(ids[r * width + row.segments.count..<r * width + width].allSatisfy { $0 == -1 })
        }
    }
}
