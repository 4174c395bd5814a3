import Foundation
import Testing

@testable import MBData

/// Shard sets edited one thing at a time, as an attacker or a bad copy would: each edit is
/// refused with `MBDataError` — by opening the set (what the loader and `serve --spool` do)
/// or by `verify` — and never traps. Checksums are recomputed after each edit, so what is
/// tested is the check of the edited value, not a checksum.
@Suite struct ShardCorruptionTests {
    typealias Fixture = ShardTests.Fixture

    static func fixture() async throws -> Fixture { try await ShardTests.fixture() }

    // MARK: helpers

    func manifestPath(_ f: Fixture) -> String { f.shards + "/" + ShardManifest.fileName }
    func shardPath(_ f: Fixture, _ index: Int) -> String { f.shards + "/" + f.manifest.shards[index].file }

    func readBytes(_ path: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) }
    func writeBytes(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    /// Edits `manifest.json` as a JSON object (snake_case keys, as on disk).
    func editManifest(_ f: Fixture, _ change: (inout [String: Any]) throws -> Void) throws {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(readBytes(manifestPath(f)))) as? [String: Any])
        try change(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: manifestPath(f)))
    }

    /// Sets the value at `path` (keys, or decimal indices into arrays) in a JSON object.
    func set(_ object: inout [String: Any], _ path: [String], _ value: Any) {
        func assign(_ node: Any, _ rest: ArraySlice<String>) -> Any {
            guard let key = rest.first else { return value }
            if var array = node as? [Any], let index = Int(key) {
                array[index] = assign(array[index], rest.dropFirst())
                return array
            }
            var dictionary = node as? [String: Any] ?? [:]
            dictionary[key] = assign(dictionary[key] as Any, rest.dropFirst())
            return dictionary
        }
        object = assign(object, path[...]) as! [String: Any]
    }

    /// Opening the set must fail with `.corruptData` naming `parts`.
    func expectRefusal(_ f: Fixture, _ parts: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: MBDataError.self, sourceLocation: sourceLocation) { try ShardSet(directory: f.shards) }
        #expect(
            error?.code == .corruptData && parts.allSatisfy { error?.description.contains($0) == true }, "\(String(describing: error))",
            sourceLocation: sourceLocation)
    }

    /// Edits a shard file's footer, then recomputes the footer hash in the trailer.
    func editFooter(_ bytes: inout [UInt8], trailer: ((inout [UInt8]) -> Void)? = nil, _ change: (inout [UInt8]) -> Void) {
        let trailerStart = bytes.count - ShardFormat.trailerSize
        let footerLength = Int(ShardFormat.littleEndianU64(bytes, at: trailerStart))
        var footer = Array(bytes[(trailerStart - footerLength)..<trailerStart])
        change(&footer)
        var newTrailer = ShardFormat.encodeTrailer(footer: footer)
        newTrailer.replaceSubrange(0..<8, with: bytes[trailerStart..<(trailerStart + 8)])
        trailer?(&newTrailer)
        bytes.replaceSubrange((trailerStart - footerLength)..<bytes.count, with: footer + newTrailer)
    }

    func putU64(_ value: UInt64, _ bytes: inout [UInt8], at offset: Int) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    /// Decodes every batch of shard `index`, lets `change` edit the entries and safetensors
    /// buffers, and writes the shard back with frames, footer, trailer and the manifest's
    /// size, hash and totals recomputed — as a writer that had made those batches would.
    func rewriteShard(
        _ f: Fixture, _ index: Int = 0, _ change: (inout [(entry: ShardFormat.Entry, buffer: [UInt8])]) throws -> Void
    ) throws {
        let set = try ShardSet(directory: f.shards)
        var frames = try set.entries[index].indices.map { (entry: set.entries[index][$0], buffer: try set.batch(shard: index, entry: $0)) }
        try change(&frames)
        var bytes: [UInt8] = []
        var entries: [ShardFormat.Entry] = []
        for (entry, buffer) in frames {
            let frame = try LZ4Frame.compress(buffer)
            var e = entry
            e.offset = UInt64(bytes.count)
            e.length = UInt64(frame.count)
            e.uncompressed = UInt64(buffer.count)
            e.checksum = ShardFormat.xxh64(frame)
            bytes += frame
            entries.append(e)
        }
        let footer = ShardFormat.encodeFooter(entries)
        bytes += footer + ShardFormat.encodeTrailer(footer: footer)
        let path = shardPath(f, index)
        try writeBytes(bytes, path)
        var manifest = set.manifest
        manifest.totals.uncompressedBytes += entries.map { Int($0.uncompressed) }.reduce(0, +) - set.entries[index].map { Int($0.uncompressed) }.reduce(0, +)
        manifest.totals.compressedBytes += entries.map { Int($0.length) }.reduce(0, +) - set.entries[index].map { Int($0.length) }.reduce(0, +)
        manifest.shards[index].bytes = bytes.count
        manifest.shards[index].xxh64 = try FileByteStream.digest(of: path)
        try writeBytes(Array(try ShardManifest.encoder.encode(manifest)), manifestPath(f))
    }

    /// Edits a safetensors buffer's JSON header (the data is kept as is).
    func editHeader(_ buffer: [UInt8], _ change: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let length = Int(ShardFormat.littleEndianU64(buffer, at: 0))
        var header = try #require(try JSONSerialization.jsonObject(with: Data(buffer[8..<(8 + length)])) as? [String: Any])
        change(&header)
        var text = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while text.count % 8 != 0 { text.append(UInt8(ascii: " ")) }
        var out = [UInt8](repeating: 0, count: 8)
        putU64(UInt64(text.count), &out, at: 0)
        return out + text + buffer[(8 + length)...]
    }

    func verifyProblems(_ f: Fixture) async throws -> [String] {
        try await ShardSet(directory: f.shards).verify().problems
    }

    // MARK: trailer and footer

    @Test func aFooterDeclaring2To62EntriesIsRefusedNotTrapped() async throws {
        let f = try await Self.fixture()
        var bytes = try readBytes(shardPath(f, 0))
        editFooter(&bytes) { footer in putU64(1 << 62, &footer, at: 0) }
        let error = #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: bytes) }
        #expect(error?.code == .corruptData && error?.description.contains("declares 4611686018427387904 entries") == true, "\(String(describing: error))")
        try writeBytes(bytes, shardPath(f, 0))
        expectRefusal(f, "4611686018427387904")
    }

    @Test func anEntryWhoseOffsetPlusLengthOverflowsIsRefused() async throws {
        let f = try await Self.fixture()
        var bytes = try readBytes(shardPath(f, 0))
        let count = Int(try ShardFormat.entries(inFile: bytes).count)
        editFooter(&bytes) { footer in putU64(UInt64.max - 10, &footer, at: 8 + (count - 1) * ShardFormat.entrySize + 8) }
        let error = #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: bytes) }
        #expect(error?.description.contains("does not follow the frame before it") == true, "\(String(describing: error))")
        try writeBytes(bytes, shardPath(f, 0))
        expectRefusal(f, "entry \(count - 1)")
    }

    @Test func overlappingOrReorderedFramesAreRefused() async throws {
        let f = try await Self.fixture()
        var bytes = try readBytes(shardPath(f, 0))
        let entries = try ShardFormat.entries(inFile: bytes)
        // Entry 1 points back into frame 0.
        editFooter(&bytes) { footer in putU64(entries[0].offset + 1, &footer, at: 8 + ShardFormat.entrySize) }
        #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: bytes) }
        // Entries 0 and 1 swapped: each still inside the file, out of order.
        var swapped = try readBytes(shardPath(f, 0))
        editFooter(&swapped) { footer in
            let first = Array(footer[8..<(8 + ShardFormat.entrySize)])
            footer.replaceSubrange(8..<(8 + ShardFormat.entrySize), with: footer[(8 + ShardFormat.entrySize)..<(8 + 2 * ShardFormat.entrySize)])
            footer.replaceSubrange((8 + ShardFormat.entrySize)..<(8 + 2 * ShardFormat.entrySize), with: first)
        }
        #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: swapped) }
    }

    @Test func aFooterLengthOrDecodedSizePastItsLimitsIsRefused() async throws {
        let f = try await Self.fixture()
        var bytes = try readBytes(shardPath(f, 0))
        editFooter(&bytes, trailer: { putU64(1 << 63, &$0, at: 0) }) { _ in }
        let error = #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: bytes) }
        #expect(error?.description.contains("footer length 9223372036854775808 does not fit") == true, "\(String(describing: error))")

        var huge = try readBytes(shardPath(f, 0))
        editFooter(&huge) { footer in putU64(1 << 40, &footer, at: 8 + 16) }
        let size = #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: huge) }
        #expect(size?.description.contains("declares a 1099511627776-byte batch") == true, "\(String(describing: size))")
        // Short or empty files.
        for length in [0, 7, 31] {
            #expect(throws: MBDataError.self) { try ShardFormat.entries(inFile: Array(huge.suffix(length))) }
        }
    }

    // MARK: the manifest

    @Test func droppedPerEpochOfMinus2To63IsRefused() async throws {
        let f = try await Self.fixture()
        try editManifest(f) { set(&$0, ["plan", "dropped_per_epoch"], Int.min) }
        expectRefusal(f, "dropped_per_epoch is -9223372036854775808")
    }

    @Test func epochsPastTheFootersRangeAreRefused() async throws {
        let f = try await Self.fixture()
        try editManifest(f) {
            set(&$0, ["plan", "first_epoch"], 1)
            set(&$0, ["plan", "epochs"], Int.max)
        }
        expectRefusal(f, "first_epoch 1 and plan.epochs 9223372036854775807")
        // 2^53 + 1 epochs fit no footer either; refused at once instead of looping over them.
        let g = try await Self.fixture()
        try editManifest(g) { set(&$0, ["plan", "epochs"], (1 << 53) + 1) }
        let clock = ContinuousClock()
        let elapsed = clock.measure { expectRefusal(g, "plan.epochs 9007199254740993") }
        #expect(elapsed < .seconds(5))
        // Epochs that fit a footer but are more than the frames hold.
        let h = try await Self.fixture()
        try editManifest(h) { set(&$0, ["plan", "epochs"], 3) }
        expectRefusal(h, "totals.batches")
    }

    @Test func theLoaderAndTheSpoolRefuseAnEditedSetBeforeServingAByte() async throws {
        let f = try await Self.fixture()
        var configuration = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<2)
        configuration.world = 2
        _ = try await MultiBatchLoader(shards: f.shards, configuration: configuration)
        try editManifest(f) {
            set(&$0, ["plan", "first_epoch"], 1)
            set(&$0, ["plan", "epochs"], Int.max)
        }
        let loading = await #expect(throws: MBDataError.self) { try await MultiBatchLoader(shards: f.shards, configuration: configuration) }
        #expect(loading?.code == .corruptData, "\(String(describing: loading))")
        // serve --spool opens each set as a SpoolBatchProducer over a ShardSet.
        #expect(throws: MBDataError.self) { try SpoolBatchProducer(shards: ShardSet(directory: f.shards)) }
    }

    @Test func aShardListedTwiceIsRefused() async throws {
        let f = try await Self.fixture()
        try editManifest(f) { object in
            var shards = object["shards"] as! [Any]
            shards.append(shards[0])
            object["shards"] = shards
        }
        expectRefusal(f, "each listed once")
    }

    @Test func negativeOrInconsistentCountsAreRefused() async throws {
        let edits: [(path: [String], value: Int, message: String)] = [
            (["dataset", "samples"], -1, "dataset.samples -1"),
            (["dataset", "version"], -5, "dataset.version -5"),
            (["shards", "0", "batches"], -3, "declares"),
            (["shards", "0", "bytes"], -1, "declares -1 bytes"),
            (["totals", "batches"], -1, "totals.batches is -1"),
            (["totals", "samples"], 1, "totals.samples is 1"),
            (["totals", "compressed_bytes"], 5, "totals say"),
            (["plan", "batches_per_epoch"], 29, "batches_per_epoch is 29"),
            (["plan", "parameters", "world"], 3, "plan.parameters"),
        ]
        for edit in edits {
            let f = try await Self.fixture()
            try editManifest(f) { set(&$0, edit.path, edit.value) }
            expectRefusal(f, edit.message)
        }
    }

    @Test func shardBatchCountsAreCheckedAgainstTheFooters() async throws {
        let f = try await Self.fixture()
        try editManifest(f) { object in
            set(&object, ["shards", "0", "batches"], f.manifest.shards[0].batches - 1)
            set(&object, ["shards", "1", "batches"], f.manifest.shards[1].batches + 1)
        }
        expectRefusal(f, f.manifest.shards[0].file, "footer lists \(f.manifest.shards[0].batches) frames")
    }

    @Test func aReversedShardOrderIsRefused() async throws {
        let f = try await Self.fixture()
        try editManifest(f) { object in object["shards"] = (object["shards"] as! [Any]).reversed() as [Any] }
        expectRefusal(f, "shards[0] is \"\(f.manifest.shards.last!.file)\"")
        // The files themselves swapped, the manifest's sizes and hashes following them: the
        // frames' order gives it away.
        let g = try await Self.fixture()
        let a = try readBytes(shardPath(g, 0))
        try writeBytes(try readBytes(shardPath(g, 1)), shardPath(g, 0))
        try writeBytes(a, shardPath(g, 1))
        try editManifest(g) { object in
            for (index, other) in [(0, 1), (1, 0)] {
                set(&object, ["shards", String(index), "bytes"], g.manifest.shards[other].bytes)
                set(&object, ["shards", String(index), "batches"], g.manifest.shards[other].batches)
                set(&object, ["shards", String(index), "xxh64"], g.manifest.shards[other].xxh64)
            }
        }
        expectRefusal(g, "frame 0 is epoch", "in (epoch, batch, rank) order")
    }

    @Test func padLengthsForAFieldThatCannotBePaddedAreRefused() async throws {
        let f = try await Self.fixture()
        try editManifest(f) { set(&$0, ["plan", "pad_lengths"], ["image": 4]) }
        expectRefusal(f, "pad_lengths names 'image'")
    }

    @Test func manifestBytesThatAreNotAManifestAreRefused() throws {
        for text in ["", "{", "[]", "{\"format\": \"mbdata-shards-1\"}", "{\"format\": \"other\"}"] {
            #expect(throws: MBDataError.self) { try ShardManifest.parse(Array(text.utf8)) }
        }
    }

    // MARK: what verify checks in the batches

    @Test func anEditedDatasetVersionOrSchemaIsFound() async throws {
        let f = try await Self.fixture()
        try editManifest(f) { set(&$0, ["dataset", "version"], 999) }
        let versioned = try ShardSet(directory: f.shards)
        let report = try await versioned.verify()
        #expect(report.fingerprintChecked)
        #expect(report.problems.contains { $0.contains("fingerprint") }, "\(report.problems)")
        let error = #expect(throws: MBDataError.self) { try versioned.check(matches: f.plan) }
        #expect(error?.description.contains("dataset version 999") == true, "\(String(describing: error))")

        // A schema edit the batches contradict.
        let g = try await Self.fixture()
        try editManifest(g) { object in
            var schema = object["schema"] as! [String: Any]
            var fields = schema["fields"] as! [[String: Any]]
            fields[2]["dtype"] = "int32"
            schema["fields"] = fields
            object["schema"] = schema
        }
        let edited = try ShardSet(directory: g.shards)
        let problems = try await edited.verify().problems
        #expect(problems.contains { $0.contains("tensor \"label\" is I64 [32], the schema makes it I32 [32]") }, "\(problems)")
        let stored = try #require(try await g.dataset.schema())
        let schemaError = #expect(throws: MBDataError.self) { try edited.check(matches: g.plan, schema: stored) }
        #expect(schemaError?.description.contains("schema differs") == true, "\(String(describing: schemaError))")

        // An edit no tensor shows (the schema's name): only the fingerprint can tell.
        let h = try await Self.fixture()
        try editManifest(h) { set(&$0, ["schema", "name"], "renamed") }
        let renamed = try await verifyProblems(h)
        #expect(renamed.count == 1 && renamed[0].contains("fingerprint"), "\(renamed)")
    }

    @Test func aBatchWhoseMetadataDisagreesWithTheFooterIsFound() async throws {
        let f = try await Self.fixture()
        try rewriteShard(f) { frames in
            frames[1].buffer = try editHeader(frames[1].buffer) { header in
                var metadata = header["__metadata__"] as! [String: Any]
                metadata["epoch"] = "1"
                header["__metadata__"] = metadata
            }
        }
        let problems = try await verifyProblems(f)
        #expect(problems.first?.contains("__metadata__ epoch is \"1\", the footer entry says \"0\"") == true, "\(problems)")
    }

    @Test func aTensorWhoseShapeDisagreesWithItsBytesIsRefusedByVerifyAndTheLoader() async throws {
        let f = try await Self.fixture()
        try rewriteShard(f) { frames in
            frames[0].buffer = try editHeader(frames[0].buffer) { header in
                var image = header["image"] as! [String: Any]
                image["shape"] = [32, 8, 9]
                header["image"] = image
            }
        }
        let problems = try await verifyProblems(f)
        #expect(problems.first?.contains("needs 2304 bytes, its data_offsets hold 2048") == true, "\(problems)")
        let set = try ShardSet(directory: f.shards)
        let first = set.entries[0][0]
        let item = PlanItem(epoch: Int(first.epoch), batch: Int(first.batch), rank: Int(first.rank))
        let producer = try SpoolBatchProducer(shards: set)
        #expect(throws: MBDataError.self) {
            try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: try producer.decoded(item))
        }
    }

    @Test func validIsPresentExactlyUnderTheTailPolicyPad() async throws {
        let f = try await Self.fixture()
        try rewriteShard(f) { frames in
            var buffer = try editHeader(frames[0].buffer) { header in
                let ids = header["_id"] as! [String: Any]
                let end = (ids["data_offsets"] as! [Int])[1]
                header["_valid"] = ["dtype": "BOOL", "shape": [32], "data_offsets": [end, end + 32]]
            }
            buffer += [UInt8](repeating: 1, count: 32)
            frames[0].buffer = buffer
        }
        let problems = try await verifyProblems(f)
        #expect(problems.first?.contains("_valid is only in plans with tail = \"pad\"") == true, "\(problems)")

        let g = try await ShardTests.fixture(parameters: PlanParameters(seed: 3, batchSize: 100, tail: .pad), epochs: 0..<1)
        try rewriteShard(g) { frames in
            let buffer = frames[0].buffer
            let reader = try SafetensorsReader(buffer)
            let valid = try #require(reader.tensors["_valid"])
            #expect(valid.range.upperBound == buffer.count, "the writer puts _valid last")
            frames[0].buffer = try editHeader(Array(buffer[..<valid.range.lowerBound])) { $0["_valid"] = nil }
        }
        let missing = try await verifyProblems(g)
        #expect(missing.first?.contains("tensor \"_valid\" is missing") == true, "\(missing)")
    }

    @Test func anIdOutsideTheDatasetOrADuplicatedSampleIsFound() async throws {
        let f = try await Self.fixture()
        try rewriteShard(f) { frames in
            let reader = try SafetensorsReader(frames[0].buffer)
            let ids = try #require(reader.tensors["_id"])
            putU64(UInt64(f.manifest.dataset.maxId + 1), &frames[0].buffer, at: ids.range.lowerBound)
        }
        let problems = try await verifyProblems(f)
        #expect(problems.contains { $0.contains("_id 1798 is neither -1") }, "\(problems)")
    }

    // MARK: variable-length fields: offsets, lengths and pad_lengths

    /// 50 samples with a variable-length token field (padded to 4 when `padTokens`), a
    /// string and a field whose variable dimension is not the first, in batches of 8.
    static func variableFixture(padTokens: Bool) async throws -> Fixture {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("v.mbdb"), create: true)
        let lines = (0..<50).map { i in
            let tokens = (0..<(i % 7)).map { String($0 + i) }.joined(separator: ", ")
            let pairs = (0..<(i % 3)).map { String($0) }.joined(separator: ", ")
            return "{\"tokens\": [\(tokens)], \"caption\": \"sample \(i)\", \"pairs\": [[\(pairs)], [\(pairs)]]}"
        }
        let source = try dir.write("v.jsonl", lines.joined(separator: "\n") + "\n")
        let fields = #"[{"name": "tokens", "dtype": "int32", "shape": [null]}, {"name": "caption", "dtype": "string"}, {"name": "pairs", "dtype": "float32", "shape": [2, null]}]"#
        try await ingest(dataset, [source], schema: try schema(#"{"name": "v", "fields": "# + fields + "}"))
        let plan = try await dataset.plan(PlanParameters(seed: 1, batchSize: 8, tail: .pad))
        var configuration = PrefetchConfiguration()
        if padTokens { configuration.padLengths = ["tokens": 4] }
        let prefetcher = try await Prefetcher(dataset: dataset, plan: plan, epochs: 0..<1, configuration: configuration)
        let shards = dir.path("shards")
        let manifest = try await ShardWriter.write(prefetcher, schema: try #require(try await dataset.schema()), to: shards)
        return Fixture(dir: dir, dataset: dataset, plan: plan, shards: shards, manifest: manifest)
    }

    /// Overwrites element `index` of int64 tensor `name` in frame `frame` of shard 0.
    func setInt64(_ f: Fixture, frame: Int, _ name: String, _ index: Int, _ value: Int64) throws {
        try rewriteShard(f) { frames in
            let info = try #require(try SafetensorsReader(frames[frame].buffer).tensors[name])
            putU64(UInt64(bitPattern: value), &frames[frame].buffer, at: info.range.lowerBound + 8 * index)
        }
    }

    @Test func offsetsThatDecreaseOrOverrunTheirValuesAreFound() async throws {
        let clean = try await Self.variableFixture(padTokens: false)
        let report = try await ShardSet(directory: clean.shards).verify()
        #expect(report.isValid && report.fingerprintChecked, "\(report.problems)")
        let cases: [(name: String, index: Int, value: Int64, message: String)] = [
            ("caption.offsets", 1, 1000, "tensor \"caption.offsets\" does not run from 0"),
            ("tokens.offsets", 3, 0, "tensor \"tokens.offsets\" does not run from 0"),
            ("tokens.offsets", 0, 1, "tensor \"tokens.offsets\" does not run from 0"),
            // pairs is [2, null]: a row holds a whole number of 2-element columns.
            ("pairs.offsets", 1, 1, "in whole rows of 2 elements"),
        ]
        for change in cases {
            let f = try await Self.variableFixture(padTokens: false)
            try setInt64(f, frame: 1, change.name, change.index, change.value)
            let problems = try await verifyProblems(f)
            #expect(problems.first?.contains(change.message) == true, "\(change.name): \(problems)")
        }
    }

    @Test func padLengthsAndLengthsAreCheckedAgainstTheBatches() async throws {
        let clean = try await Self.variableFixture(padTokens: true)
        #expect(try await ShardSet(directory: clean.shards).verify().isValid)
        let f = try await Self.variableFixture(padTokens: true)
        try editManifest(f) { set(&$0, ["plan", "pad_lengths", "tokens"], 5) }
        let problems = try await verifyProblems(f)
        #expect(problems.first?.contains("tensor \"tokens\" is I32 [8, 4], the schema makes it I32 [8, 5]") == true, "\(problems)")
        let g = try await Self.variableFixture(padTokens: true)
        try setInt64(g, frame: 0, "tokens.lengths", 2, 9)
        let lengths = try await verifyProblems(g)
        #expect(lengths.first?.contains("tokens.lengths\" holds a value outside 0…4") == true, "\(lengths)")
        let h = try await Self.variableFixture(padTokens: true)
        try editManifest(h) { set(&$0, ["plan", "pad_lengths", "tokens"], 0) }
        expectRefusal(h, "pad_lengths['tokens'] is 0")
    }

    // MARK: packed batches (§5.3)

    /// A packed set of `PackedPlanTests`' dataset: world 2, `tail`, two epochs, several shards.
    static func packedFixture(tail: TailPolicy = .pad, overlong: OverlongPolicy = .split) async throws -> Fixture {
        let (dir, dataset) = try await PackedPlanTests.dataset()
        let parameters = PackedPlanTests.parameters(world: 2, tail: tail)
        let plan = try await dataset.packedPlan(parameters, packing: PackedPlanTests.spec(overlong: overlong))
        let out = dir.path("packed")
        let manifest = try await ShardWriter.writePacked(dataset: dataset, plan: plan, epochs: 0..<2, to: out, targetShardBytes: 8192)
        return Fixture(dir: dir, dataset: dataset, plan: try await dataset.plan(parameters), shards: out, manifest: manifest)
    }

    /// Rewrites the first batch of shard 0 with its tensor `name` changed by `change` (its
    /// values as int32 or int64, as its dtype is), frames and hashes made anew.
    func editPackedTensor(_ f: Fixture, _ name: String, _ change: (inout [Int64], _ width: Int) -> Void) throws {
        try rewriteShard(f) { frames in
            var buffer = frames[0].buffer
            let info = try #require(try SafetensorsReader(buffer).tensors[name])
            let size = info.dtype == "I64" ? 8 : 4
            var values = stride(from: info.range.lowerBound, to: info.range.upperBound, by: size).map { at in
                (0..<size).reduce(UInt64(0)) { $0 | UInt64(buffer[at + $1]) << (8 * $1) }
            }.map { size == 8 ? Int64(bitPattern: $0) : Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: $0))) }
            change(&values, info.shape.count > 1 ? info.shape[1] : 1)
            for (index, value) in values.enumerated() {
                for byte in 0..<size { buffer[info.range.lowerBound + index * size + byte] = UInt8(truncatingIfNeeded: UInt64(bitPattern: value) >> (8 * byte)) }
            }
            frames[0].buffer = buffer
        }
    }

    @Test(arguments: [TailPolicy.pad, .drop], [OverlongPolicy.split, .drop])
    func aPackedSetVerifiesRowByRowAndAgainstItsStatistics(tail: TailPolicy, overlong: OverlongPolicy) async throws {
        let f = try await Self.packedFixture(tail: tail, overlong: overlong)
        let report = try await ShardSet(directory: f.shards).verify()
        #expect(report.isValid, "\(report.problems)")
        let set = try ShardSet(directory: f.shards)
        let segments = set.entries.flatMap { $0 }.map { Int($0.samples) }.reduce(0, +)
        #expect(report.samplesChecked == segments && segments > 0)
    }

    @Test func aPackedBatchWhoseRowsBreakTheLayoutIsFound() async throws {
        // Each edit breaks one rule of §5.3 in row 0 of the first batch; verify names it.
        let cases: [(tensor: String, edit: (inout [Int64], Int) -> Void, expected: String)] = [
            ("segment_ids", { values, _ in values[1] = values[0] + 2 }, "does not continue the row"),
            ("positions", { values, _ in values[1] += 5 }, "does not continue the row"),
            ("positions", { values, _ in values[0] = 3 }, "starts at position 3, not 0"),
            ("tokens", { values, _ in values[values.count - 1] = 7 }, "padding (segment_ids 0) with position 0 or a nonzero tokens value"),
            ("_id", { values, width in values[width - 1] = 1 }, "must be -1"),
            ("_id", { values, _ in values[0] = 999_999 }, "is not an id in 1…300"),
        ]
        for (tensor, edit, expected) in cases {
            let f = try await Self.packedFixture()
            try editPackedTensor(f, tensor, edit)
            let problems = try await verifyProblems(f)
            #expect(problems.contains { $0.contains(expected) }, "\(tensor): \(problems)")
        }
    }

    @Test func aPackedManifestWhoseStatisticsDisagreeWithTheBatchesIsFound() async throws {
        let f = try await Self.packedFixture()
        let tokens = try #require(f.manifest.packing?.statistics.tokens)
        try editManifest(f) { object in
            var packing = object["packing"] as! [String: Any]
            var statistics = packing["statistics"] as! [String: Any]
            statistics["tokens"] = tokens + 1
            packing["statistics"] = statistics
            object["packing"] = packing
        }
        let problems = try await verifyProblems(f)
        #expect(problems.contains { $0.contains("the batches hold \(tokens) tokens, the manifest's statistics count \(tokens + 1)") }, "\(problems)")
    }

    // MARK: parsers fed bytes directly

    /// A safetensors buffer with the given header text and `dataBytes` zero bytes of data.
    func safetensors(_ header: String, dataBytes: Int) -> [UInt8] {
        var text = Array(header.utf8)
        while text.count % 8 != 0 { text.append(UInt8(ascii: " ")) }
        var out = [UInt8](repeating: 0, count: 8)
        putU64(UInt64(text.count), &out, at: 0)
        return out + text + [UInt8](repeating: 0, count: dataBytes)
    }

    @Test func safetensorsHeadersWithImpossibleNumbersAreRefused() throws {
        let good = safetensors(#"{"a": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}, "b": {"dtype": "U8", "shape": [3], "data_offsets": [16, 19]}}"#, dataBytes: 19)
        let reader = try SafetensorsReader(good)
        #expect(reader.tensors["b"]?.shape == [3] && reader.names == ["a", "b"])
        let bad: [(String, Int, String)] = [
            (#"{"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 9223372036854775807]}}"#, 16, "data_offsets"),
            (#"{"a": {"dtype": "U8", "shape": [16], "data_offsets": [-16, 16]}}"#, 16, "data_offsets"),
            (#"{"a": {"dtype": "I64", "shape": [4611686018427387904, 4611686018427387904], "data_offsets": [0, 16]}}"#, 16, "dimension"),
            (#"{"a": {"dtype": "I64", "shape": [16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16], "data_offsets": [0, 16]}}"#, 16, "more than 9223372036854775807"),
            (#"{"a": {"dtype": "I64", "shape": [3], "data_offsets": [0, 16]}}"#, 16, "needs 24 bytes"),
            (#"{"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}, "b": {"dtype": "U8", "shape": [8], "data_offsets": [8, 16]}}"#, 16, "overlap"),
            (#"{"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}"#, 16, "end at 8 of 16"),
            (#"{"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}, "a": {"dtype": "U8", "shape": [8], "data_offsets": [8, 16]}}"#, 16, "twice"),
            (#"{"a": {"dtype": "X9", "shape": [8], "data_offsets": [0, 8]}}"#, 8, "dtype"),
            (#"{"__metadata__": {"epoch": 1}}"#, 0, "__metadata__"),
        ]
        for (header, dataBytes, message) in bad {
            let error = #expect(throws: MBDataError.self) { try SafetensorsReader(safetensors(header, dataBytes: dataBytes)) }
            #expect(error?.code == .corruptData && error?.description.contains(message) == true, "\(header): \(String(describing: error))")
        }
        // A header length past the buffer, or one that wraps when read as a signed number.
        for declared in [UInt64(1000), UInt64.max, UInt64(1) << 63] {
            var buffer = good
            putU64(declared, &buffer, at: 0)
            #expect(throws: MBDataError.self) { try SafetensorsReader(buffer) }
        }
    }

    /// The shard fuzz targets' valid seeds pass their checks (so fuzzing starts past them),
    /// and the near misses — the probe's manifest edits — are refused.
    @Test func theShardFuzzSeedsAreValidAndTheNearMissesRefused() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus")
        func inputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
            try FileManager.default.contentsOfDirectory(atPath: corpus.appendingPathComponent(target).path).sorted().map {
                ($0, try readBytes(corpus.appendingPathComponent(target).appendingPathComponent($0).path))
            }
        }
        for (name, bytes) in try inputs("shard-file") where name.hasPrefix("seed-") {
            #expect(throws: Never.self, "\(name)") { try UntrustedInput.shardFile(bytes) }
        }
        for (name, bytes) in try inputs("shard-batch") where name.hasPrefix("seed-") {
            #expect(throws: Never.self, "\(name)") { try UntrustedInput.shardBatch(bytes) }
        }
        for (name, bytes) in try inputs("shard-packed-batch") where name.hasPrefix("seed-") {
            #expect(throws: Never.self, "\(name)") { try UntrustedInput.packedShardBatch(bytes) }
            var broken = bytes
            broken[0] ^= 1  // the other batch's footer entry: its metadata names another batch
            #expect(throws: MBDataError.self, "\(name)") { try UntrustedInput.packedShardBatch(broken) }
        }
        for (name, bytes) in try inputs("shard-manifest") where name.hasPrefix("seed-") {
            if ["seed-rs", "seed-sh", "seed-sh2", "seed-packed-mixture"].contains(name) {
                #expect(throws: Never.self, "\(name)") { try UntrustedInput.shardManifest(bytes) }
            } else {
                #expect(throws: MBDataError.self, "\(name)") { try UntrustedInput.shardManifest(bytes) }
            }
        }
    }

    @Test func anLZ4HeaderDeclaringMoreThanAFrameCanHoldIsRefusedBeforeAllocating() throws {
        let frame = try LZ4Frame.compress([UInt8](repeating: 7, count: 1000))
        // The header's content size field (FLG bit 3) sits at bytes 6..<14; HC follows it.
        #expect(frame[4] & 0x08 != 0)
        var forged = frame
        putU64(1 << 62, &forged, at: 6)
        forged[14] = UInt8(truncatingIfNeeded: XXH32.hash(Array(forged[4..<14])) >> 8)
        let error = #expect(throws: MBDataError.self) { try LZ4Frame.decompress(forged, limit: Int.max) }
        #expect(error?.description.contains("declares 4611686018427387904 bytes of content") == true, "\(String(describing: error))")
        putU64(UInt64.max, &forged, at: 6)
        forged[14] = UInt8(truncatingIfNeeded: XXH32.hash(Array(forged[4..<14])) >> 8)
        #expect(throws: MBDataError.self) { try LZ4Frame.decompress(forged, limit: Int.max) }
    }
}

/// XXH32 with seed 0 (the LZ4 frame header's checksum is its second byte), for forging headers.
enum XXH32 {
    static let p1: UInt32 = 2_654_435_761, p2: UInt32 = 2_246_822_519, p3: UInt32 = 3_266_489_917
    static let p4: UInt32 = 668_265_263, p5: UInt32 = 374_761_393

    static func rotl(_ x: UInt32, _ r: UInt32) -> UInt32 { (x << r) | (x >> (32 - r)) }

    static func hash(_ input: [UInt8]) -> UInt32 {
        func u32(_ i: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(input[i + $1]) << (8 * UInt32($1)) } }
        var index = 0
        var h: UInt32
        if input.count >= 16 {
            var v = [p1 &+ p2, p2, 0, 0 &- p1]
            while index + 16 <= input.count {
                for lane in 0..<4 { v[lane] = rotl(v[lane] &+ u32(index + 4 * lane) &* p2, 13) &* p1 }
                index += 16
            }
            h = rotl(v[0], 1) &+ rotl(v[1], 7) &+ rotl(v[2], 12) &+ rotl(v[3], 18)
        } else {
            h = p5
        }
        h = h &+ UInt32(input.count)
        while index + 4 <= input.count {
            h = rotl(h &+ u32(index) &* p3, 17) &* p4
            index += 4
        }
        while index < input.count {
            h = rotl(h &+ UInt32(input[index]) &* p5, 11) &* p1
            index += 1
        }
        h ^= h >> 15
        h = h &* p2
        h ^= h >> 13
        h = h &* p3
        h ^= h >> 16
        return h
    }
}
