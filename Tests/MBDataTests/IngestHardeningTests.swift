import Foundation
import Testing

@testable import MBData

#if canImport(Glibc)
    import Glibc
#endif

/// Builds zip archives in code: stored members, with every field of the central directory
/// open to corruption.
enum Zip {
    struct Member {
        var name: String
        var data: [UInt8]
        /// The CRC-32 the directory declares; the true one when nil.
        var declaredCRC: UInt32? = nil
        /// Replaces the central directory entry's extra field (a zip64 field, say).
        var centralExtra: [UInt8]? = nil
        /// Written in the 32-bit size and offset fields when `centralExtra` is a zip64 field.
        var zip64Markers = false
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    /// A zip64 extra field holding the given 64-bit values.
    static func zip64Extra(_ values: [UInt64]) -> [UInt8] {
        le(UInt16(1)) + le(UInt16(values.count * 8)) + values.flatMap { le($0) }
    }

    /// The archive; with `zip64Record`, a zip64 end record and locator whose count, size and
    /// offset may be overridden.
    static func archive(_ members: [Member], zip64Record: (count: UInt64?, size: UInt64?, offset: UInt64?)? = nil) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for member in members {
            let offset = UInt32(out.count)
            let crc = member.declaredCRC ?? crc32(member.data)
            let name = Array(member.name.utf8)
            out += le(UInt32(0x0403_4b50)) + le(UInt16(20)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0))
            out += le(crc32(member.data)) + le(UInt32(member.data.count)) + le(UInt32(member.data.count))
            out += le(UInt16(name.count)) + le(UInt16(0)) + name + member.data
            let extra = member.centralExtra ?? []
            let size32 = member.zip64Markers ? UInt32.max : UInt32(member.data.count)
            central += le(UInt32(0x0201_4b50)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0))
            central += le(crc) + le(size32) + le(size32)
            central += le(UInt16(name.count)) + le(UInt16(extra.count)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0))
            central += le(member.zip64Markers ? UInt32.max : offset) + name + extra
        }
        let directoryOffset = out.count
        out += central
        if let zip64Record {
            let recordOffset = out.count
            out += le(UInt32(0x0606_4b50)) + le(UInt64(44)) + le(UInt16(45)) + le(UInt16(45)) + le(UInt32(0)) + le(UInt32(0))
            out += le(UInt64(members.count)) + le(zip64Record.count ?? UInt64(members.count))
            out += le(zip64Record.size ?? UInt64(central.count)) + le(zip64Record.offset ?? UInt64(directoryOffset))
            out += le(UInt32(0x0706_4b50)) + le(UInt32(0)) + le(UInt64(recordOffset)) + le(UInt32(1))
        }
        out += le(UInt32(0x0605_4b50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(members.count)) + le(UInt16(members.count))
        out += le(UInt32(central.count)) + le(UInt32(directoryOffset)) + le(UInt16(0))
        return out
    }
}

/// Bad sizes, counts and offsets in source files end in an error that names them — never a
/// trap, never a silent acceptance — and no record may take more memory than the limit.
@Suite struct IngestHardeningTests {
    static let labelSchema = #"{"name": "l", "fields": [{"name": "label", "dtype": "int64"}]}"#
    static let labels = NPY.file(descr: "<i8", shape: [3], data: NPY.littleEndian([Int64(1), 2, 3]))

    static func header(descr: String, shape: String) -> [UInt8] {
        var text = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + text.utf8.count + 1) % 64 != 0 { text += " " }
        text += "\n"
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(text.utf8.count & 0xFF), UInt8(text.utf8.count >> 8)] + Array(text.utf8)
    }

    // MARK: NPY headers

    @Test(
        "NPY headers whose byte count overflows are refused, not trapped on",
        arguments: [
            ("<f4", "(4611686018427387904,)"),  // 2**62 float32: 2**64 bytes
            ("|S9223372036854775807", "(2,)"),  // an item size of Int.max
            ("<U4611686018427387904", "(1,)"),  // 4 bytes per character overflows the item size
            ("<i8", "(2, 4294967296, 4294967296)"),  // the product of the shape overflows
            ("<f8", "(9223372036854775807,)"),
        ])
    func overflowingHeaders(descr: String, shape: String) throws {
        #expect {
            try NPYHeader.parse(bytes: Self.header(descr: descr, shape: shape))
        } throws: { ($0 as? MBDataError)?.matches(.malformedRecord, descr) == true }
    }

    @Test func anNPYWhoseDataIsLargerThanTheFileIsRefused() async throws {
        let dir = try TemporaryDirectory()
        // 2**62 one-byte labels: the product fits, the file does not hold them.
        let path = try dir.write("huge.npy", bytes: Self.header(descr: "|i1", shape: "(4611686018427387904,)") + [1, 2, 3])
        let error = await ingestError(try Dataset(path: dir.path("d.mbdb"), create: true), ["label=\(path)"], schema: try schema(Self.labelSchema))
        #expect(error?.matches(.malformedRecord, "huge.npy", "4611686018427387904", "truncated") == true, "\(String(describing: error))")
    }

    @Test func anNPYRowLargerThanTheRecordLimitIsRefused() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("big.npy", bytes: NPY.file(descr: "|S4096", shape: [2], data: [UInt8](repeating: 65, count: 8192)))
        var options = IngestOptions()
        options.maxRecordBytes = 1024
        let error = await ingestError(
            try Dataset(path: dir.path("d.mbdb"), create: true), ["blob=\(path)"],
            schema: try schema(#"{"name": "b", "fields": [{"name": "blob", "dtype": "bytes"}]}"#), options: options)
        #expect(error?.matches(.limitExceeded, "big.npy", "per-record limit of 1024 bytes") == true, "\(String(describing: error))")
    }

    // MARK: NPZ archives

    func npzError(_ archive: [UInt8], options: IngestOptions = IngestOptions()) async throws -> MBDataError? {
        let dir = try TemporaryDirectory()
        let path = try dir.write("a.npz", bytes: archive)
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let error = await ingestError(dataset, [path], schema: try schema(Self.labelSchema), options: options)
        #expect(try await dataset.samples().count == 0, "nothing of a corrupt archive is committed")
        return error
    }

    @Test func aWellFormedArchiveFromTheBuilderIngests() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("a.npz", bytes: Zip.archive([Zip.Member(name: "label.npy", data: Self.labels)]))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [path], schema: try schema(Self.labelSchema))
        #expect(try await dataset.samples().map { $0.values[0] } == [.integer(1), .integer(2), .integer(3)])
    }

    @Test func aMemberWhoseBytesFailTheirCRCIsRefusedBeforeAnySampleIsCommitted() async throws {
        var corrupted = Self.labels
        corrupted[corrupted.count - 8] ^= 0x40  // the stored value 3 becomes 67
        var options = IngestOptions()
        options.rowsPerTransaction = 1
        let error = try await npzError(
            Zip.archive([Zip.Member(name: "label.npy", data: corrupted, declaredCRC: Zip.crc32(Self.labels))]), options: options)
        #expect(error?.matches(.malformedRecord, "a.npz:label.npy", "bad CRC-32") == true, "\(String(describing: error))")
    }

    @Test func theDeflatedSampleArchiveIsCheckedToo() throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: samplePath("formats/tabular_compressed.npz"))))
        try ZipDirectory.verify(archive: bytes)
        // The first member's CRC-32 in the central directory, off by one bit.
        let directory = try #require((0..<(bytes.count - 4)).first { Zip.le(UInt32(0x0201_4b50)) == Array(bytes[$0..<($0 + 4)]) })
        bytes[directory + 16] ^= 1
        #expect { try ZipDirectory.verify(archive: bytes) } throws: { ($0 as? MBDataError)?.matches(.malformedRecord, "bad CRC-32") == true }
    }

    @Test func aMemberNamedTwiceIsRefused() async throws {
        let twice = Zip.archive([Zip.Member(name: "label.npy", data: Self.labels), Zip.Member(name: "label.npy", data: Self.labels)])
        let error = try await npzError(twice)
        #expect(error?.matches(.malformedRecord, "label.npy appears twice") == true, "\(String(describing: error))")
        let aliased = Zip.archive([Zip.Member(name: "label.npy", data: Self.labels), Zip.Member(name: "label", data: Self.labels)])
        let second = try await npzError(aliased)
        #expect(second?.matches(.malformedRecord, "a second array for the field") == true, "\(String(describing: second))")
    }

    @Test(
        "zip64 values of 2^63 or more are refused",
        arguments: [
            (UInt64(1) << 63, nil, nil, "members"),
            (nil, UInt64.max, nil, "directory"),
            (nil, nil, UInt64(1) << 63, "offset"),
            (nil, nil, UInt64(1) << 62, "beyond the end"),
            (UInt64(1) << 40, nil, nil, "cannot fit"),
        ] as [(UInt64?, UInt64?, UInt64?, String)])
    func zip64EndRecordValues(count: UInt64?, size: UInt64?, offset: UInt64?, expected: String) async throws {
        let archive = Zip.archive([Zip.Member(name: "label.npy", data: Self.labels)], zip64Record: (count, size, offset))
        let error = try await npzError(archive)
        #expect(error?.matches(.malformedRecord, "a.npz", expected) == true, "\(String(describing: error))")
    }

    @Test(
        "zip64 extra fields that are short, past 2^63 or point outside the archive are refused",
        arguments: [
            (Zip.zip64Extra([UInt64(1) << 63, 10, 0]), "out of range"),
            (Zip.zip64Extra([10, UInt64.max, 0]), "out of range"),
            (Zip.zip64Extra([UInt64(Self.labels.count), UInt64(Self.labels.count)]), "too short"),
            (Array(Zip.zip64Extra([1, 1, 0]).prefix(12)), "runs past"),
            (Zip.zip64Extra([UInt64(Self.labels.count), UInt64(Self.labels.count), UInt64(1) << 62]), "outside the archive"),
            (Zip.zip64Extra([UInt64(Self.labels.count), UInt64(1) << 40, 0]), "outside the archive"),
        ])
    func zip64ExtraFields(extra: [UInt8], expected: String) async throws {
        // The short field sits on the last directory entry, where reading past it leaves the directory.
        let archive = Zip.archive([
            Zip.Member(name: "other.npy", data: Self.labels),
            Zip.Member(name: "label.npy", data: Self.labels, centralExtra: extra, zip64Markers: true),
        ])
        let error = try await npzError(archive)
        #expect(error?.matches(.malformedRecord, "a.npz", expected) == true, "\(String(describing: error))")
    }

    @Test func aWellFormedZip64ArchiveIngests() async throws {
        let extra = Zip.zip64Extra([UInt64(Self.labels.count), UInt64(Self.labels.count), 0])
        let archive = Zip.archive([Zip.Member(name: "label.npy", data: Self.labels, centralExtra: extra, zip64Markers: true)], zip64Record: (nil, nil, nil))
        try ZipDirectory.verify(archive: archive)
    }

    // MARK: Numbers out of range

    static let floatSchema = #"{"name": "f", "fields": [{"name": "x", "dtype": "float32"}, {"name": "d", "dtype": "float64"}, {"name": "n", "dtype": "int32"}]}"#

    func jsonValues(_ line: String) throws -> [SampleValue] {
        try JSONRecordParser(schema: try schema(Self.floatSchema)).parse(bytes: Array(line.utf8))
    }

    @Test(
        "a literal beyond the dtype is refused alike, however far beyond",
        arguments: [
            (#"{"x": 1e39, "d": 0, "n": 0}"#, "field 'x'", "float32 within"),
            (#"{"x": 1e400, "d": 0, "n": 0}"#, "field 'x'", "float32 within"),
            (#"{"x": -1e400, "d": 0, "n": 0}"#, "field 'x'", "float32 within"),
            (#"{"x": 0, "d": 1e400, "n": 0}"#, "field 'd'", "float64 within"),
            (#"{"x": 0, "d": 0, "n": 1e400}"#, "field 'n'", "int32 in"),
            (#"{"x": NaN, "d": 0, "n": NaN}"#, "field 'n'", "accepted only in float fields"),
        ])
    func floatOverflowInJSON(line: String, field: String, expected: String) throws {
        #expect { try jsonValues(line) } throws: { ($0 as? MBDataError)?.matches(.schemaMismatch, field, expected) == true }
    }

    @Test func explicitNonFiniteTokensAreKeptInFloatFields() throws {
        let values = try jsonValues(#"{"x": NaN, "d": -Infinity, "n": 7}"#)
        guard case .real(let x) = values[0], case .real(let d) = values[1] else { Issue.record("\(values)"); return }
        #expect(x.isNaN && d == -.infinity && values[2] == .integer(7))
        let csv = try CSVSource.samples(in: Array("x,d,n\nnan,+Infinity,1\n".utf8), schema: try schema(Self.floatSchema))
        guard case .real(let cx) = csv[0][0], case .real(let cd) = csv[0][1] else { Issue.record("\(csv)"); return }
        #expect(cx.isNaN && cd == .infinity)
    }

    @Test func csvRefusesFloatOverflowLikeJSON() throws {
        for cell in ["1e39", "1e400", "-1e999"] {
            #expect {
                try CSVSource.samples(in: Array("x,d,n\n\(cell),0,0\n".utf8), schema: try schema(Self.floatSchema))
            } throws: { ($0 as? MBDataError)?.matches(.schemaMismatch, "field 'x'", "float32 within") == true }
        }
    }

    // MARK: Per-record memory

    static let vectorSchema = #"{"name": "v", "fields": [{"name": "v", "dtype": "float32", "shape": [4]}]}"#
    static let sequenceSchema = #"{"name": "s", "fields": [{"name": "s", "dtype": "float64", "shape": [null]}]}"#

    @Test func aHugeCSVCellForASmallTensorIsRefusedAtItsFifthValue() throws {
        // 2 MB of values for float32[4]: refused as a shape error, not encoded in full.
        let cell = String(repeating: "1.5 ", count: 500_000)
        #expect {
            try CSVSource.samples(in: Array("v\n\(cell)\n".utf8), schema: try schema(Self.vectorSchema))
        } throws: { ($0 as? MBDataError)?.matches(.schemaMismatch, "field 'v'", "expected 4 space-separated values", "got more") == true }
    }

    @Test func aCSVRecordPastTheLimitStopsTheIngestWithLimitExceeded() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("big.csv", "v\n1 2 3 4\n\"" + String(repeating: "1 ", count: 300_000) + "\n" + String(repeating: "2 ", count: 300_000) + "\"\n")
        var options = IngestOptions()
        options.maxRecordBytes = 1 << 20
        let error = await ingestError(try Dataset(path: dir.path("d.mbdb"), create: true), [path], schema: try schema(Self.vectorSchema), options: options)
        #expect(error?.matches(.limitExceeded, "big.csv", "line 3", "per-record limit of 1 MiB") == true, "\(String(describing: error))")
    }

    @Test func aJSONLineOrTensorPastTheLimitIsRefused() async throws {
        let dir = try TemporaryDirectory()
        var options = IngestOptions()
        options.maxRecordBytes = 1 << 20
        let longLine = try dir.write("long.jsonl", "{\"s\": [" + String(repeating: "1,", count: 600_000) + "1]}\n")
        let error = await ingestError(try Dataset(path: dir.path("a.mbdb"), create: true), [longLine], schema: try schema(Self.sequenceSchema), options: options)
        #expect(error?.matches(.limitExceeded, "long.jsonl", "line 1") == true, "\(String(describing: error))")
        // 200,000 one-byte literals fit the line limit but need 1.6 MB as float64.
        let parser = JSONRecordParser(schema: try schema(Self.sequenceSchema), maxRecordBytes: 1 << 20)
        #expect {
            try parser.parse(bytes: Array(("{\"s\": [" + String(repeating: "1,", count: 200_000) + "1]}").utf8))
        } throws: { ($0 as? MBDataError)?.matches(.limitExceeded, "field 's'", "the tensor") == true }
    }

    @Test func aJSONArrayLongerThanAFixedShapeIsRefusedAtItsExtraElement() throws {
        let parser = JSONRecordParser(schema: try schema(Self.vectorSchema))
        #expect {
            try parser.parse(bytes: Array(("{\"v\": [1, 2, 3, 4, 5" + String(repeating: ", 6", count: 100_000) + "]}").utf8))
        } throws: { ($0 as? MBDataError)?.matches(.schemaMismatch, "field 'v'", "expected 4 elements", "got more") == true }
    }

    // MARK: Token binaries and options

    static let tokenSchema = #"{"name": "t", "fields": [{"name": "tokens", "dtype": "int32", "shape": [null]}]}"#

    @Test(arguments: [1 << 62, 1_000_000_000_000, 0, -1, RecordLimits.maxSequenceLength + 1])
    func absurdSequenceLengthsAreRefusedBeforeAnyAllocation(length: Int) async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("t.bin", bytes: NPY.littleEndian([UInt16](repeating: 7, count: 16)))
        do {
            try await ingest(try Dataset(path: dir.path("d.mbdb"), create: true), [path], schema: try schema(Self.tokenSchema), sequenceLength: length)
            Issue.record("expected a refusal")
        } catch let error as MBDataError {
            #expect(error.matches(.invalidArgument, "the sequence length must be within 1...\(RecordLimits.maxSequenceLength)", "\(length)"), "\(error)")
            #expect(error.parameter == "SourceSpec.sequenceLength")
        }
    }

    @Test func aTokenWindowPastTheRecordLimitIsRefused() throws {
        #expect {
            try TokenSource.windowCount(
                in: [UInt8](repeating: 0, count: 64), schema: try schema(Self.tokenSchema), sequenceLength: 1 << 20, tokenByteWidth: 2,
                maxRecordBytes: 1 << 20)
        } throws: { ($0 as? MBDataError)?.matches(.limitExceeded, "window of 1048576 tokens") == true }
        #expect(try TokenSource.windowCount(in: [UInt8](repeating: 0, count: 64), schema: try schema(Self.tokenSchema), sequenceLength: 4, tokenByteWidth: 2) == 8)
    }

    @Test func optionValuesOutOfRangeAreRefusedByTheLibrary() throws {
        // Each error names the parameter it is about (the CLI turns it into its flag), no flag.
        let cases: [(String, (inout IngestOptions) -> Void)] = [
            ("rowsPerTransaction", { $0.rowsPerTransaction = 0 }),
            ("rowsPerTransaction", { $0.rowsPerTransaction = 1 << 40 }),
            ("maxRecordBytes", { $0.maxRecordBytes = 0 }),
            ("maxRecordBytes", { $0.maxRecordBytes = 1 << 40 }),
            ("validationFraction", { $0.validationFraction = .nan }),
            ("validationFraction", { $0.validationFraction = 1.5 }),
            ("maxErrors", { $0.maxErrors = -1 }),
        ]
        for (parameter, change) in cases {
            var options = IngestOptions()
            change(&options)
            #expect { try options.validate() } throws: { error in
                guard let error = error as? MBDataError else { return false }
                return error.code == .invalidArgument && error.parameter == "IngestOptions.\(parameter)" && !error.description.contains("--")
            }
        }
    }

    // MARK: Image folders

    @Test func imageFoldersFollowLinksAndReportEverySkippedEntry() async throws {
        let dir = try TemporaryDirectory()
        let root = dir.path("images")
        try dir.write("images/cat/0.png", bytes: [1, 2, 3])
        try dir.write("images/dog/0.png", bytes: [4, 5])
        try dir.write("images/dog/.DS_Store", bytes: [0])
        try dir.write("images/README.txt", "not an image")
        try dir.write("outside/far.png", bytes: [9, 9, 9, 9])
        try dir.write("images/dog/nested/deep.png", bytes: [7])
        #expect(symlink(dir.path("outside/far.png"), root + "/dog/1.png") == 0)  // a link outside the root: followed
        #expect(symlink(root + "/dog/gone.png", root + "/dog/2.png") == 0)  // dangling
        #expect(symlink(root + "/cat/loop", root + "/cat/loop") == 0)  // a loop
        #expect(mkfifo(root + "/cat/pipe.png", 0o644) == 0)  // would block a reader forever
        #expect(symlink(root + "/cat", root + "/kitten") == 0)  // a linked class folder
        // A class folder whose name is not UTF-8, holding an image.
        let badFolder = (Array(root.utf8) + [0x2F, 0x62, 0x61, 0x64, 0xFF]).map { CChar(bitPattern: $0) }
        #expect(mkdir(badFolder + [0], 0o755) == 0)
        let fd = open(badFolder + Array("/x.png".utf8).map { CChar(bitPattern: $0) } + [0], O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0)
        close(fd)

        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let imageSchema = try schema(#"{"name": "i", "fields": [{"name": "image", "dtype": "bytes"}, {"name": "label", "dtype": "int64"}, {"name": "path", "dtype": "string"}]}"#)
        let summary = try await ingest(dataset, [root], schema: imageSchema)
        let paths = try await dataset.samples().map { $0.values[2] }
        #expect(paths == [.text("cat/0.png"), .text("dog/0.png"), .text("dog/1.png"), .text("kitten/0.png")])
        let notes = summary.notes.joined(separator: "\n")
        for expected in [
            "skipped 9 entries", "bad\u{FFFD}: the name is not valid UTF-8 (bytes 62 61 64 ff): a folder of 1 entries, left out with them", "README.txt: a file directly in the root",
            "dog/.DS_Store: a hidden name", "dog/2.png: a dangling symbolic link", "cat/loop: a symbolic link loop",
            "cat/pipe.png: not a regular file", "dog/nested: a folder inside a class folder",
        ] {
            #expect(notes.contains(expected), "notes should contain \(expected): \(notes)")
        }
    }

    @Test func anImageLargerThanTheRecordLimitIsABadRecord() async throws {
        let dir = try TemporaryDirectory()
        try dir.write("images/cat/small.png", bytes: [1])
        try dir.write("images/cat/wide.png", bytes: [UInt8](repeating: 1, count: 4096))
        var options = IngestOptions()
        options.maxRecordBytes = 1024
        options.onError = .skip
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let summary = try await ingest(
            dataset, [dir.path("images")], schema: try schema(#"{"name": "i", "fields": [{"name": "image", "dtype": "bytes"}, {"name": "label", "dtype": "int64"}]}"#),
            options: options)
        #expect(summary.rowsAdded == 1 && summary.rowsFailed == 1)
        #expect(summary.errors.first?.contains("cat/wide.png") == true && summary.errors.first?.contains("per-record limit") == true, "\(summary.errors)")
    }

    // MARK: Mutated inputs

    /// SplitMix64: a repeatable stream of mutations.
    struct Mutator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }

        /// One to four edits: a flipped byte, a byte set to an edge value, an inserted large
        /// number, a cut, or a repeated run.
        mutating func mutate(_ input: [UInt8]) -> [UInt8] {
            var bytes = input
            for _ in 0...below(4) {
                let at = below(bytes.count + 1)
                switch below(5) {
                case 0 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] ^= UInt8(1 << below(8))
                case 1 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] = [0x00, 0xFF, 0x7F, 0x80, 0x22, 0x2C][below(6)]
                case 2: bytes.insert(contentsOf: Array(["9223372036854775807", "4611686018427387904", "-1", "1e400", "18446744073709551615"][below(5)].utf8), at: at)
                case 3: bytes.removeSubrange(at..<min(bytes.count, at + below(16)))
                default:
                    let run = Array(bytes[at..<min(bytes.count, at + below(32))])
                    bytes.insert(contentsOf: run, at: at)
                }
            }
            return bytes
        }
    }

    /// Runs `body` on `count` mutations of each seed: it may return or throw MBDataError,
    /// nothing else (a trap ends the test process).
    func survivesMutations(of seeds: [[UInt8]], count: Int = 2_000, _ body: ([UInt8]) throws -> Void) {
        var mutator = Mutator(state: 0x6d62_6461_7461)
        for seed in seeds {
            for _ in 0..<count {
                do {
                    try body(mutator.mutate(seed))
                } catch is MBDataError {
                } catch {
                    Issue.record("not an MBDataError: \(error)")
                }
            }
        }
    }

    @Test func everyIngestParserSurvivesMutatedInputs() throws {
        let npz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: samplePath("formats/tabular_compressed.npz"))))
        let stored = Zip.archive([Zip.Member(name: "label.npy", data: Self.labels)])
        let zip64 = Zip.archive(
            [Zip.Member(name: "label.npy", data: Self.labels, centralExtra: Zip.zip64Extra([88, 88, 0]), zip64Markers: true)],
            zip64Record: (nil, nil, nil))
        survivesMutations(of: [npz, stored, zip64], count: 1_000) { try UntrustedInput.zipArchive($0) }
        let text = NPY.file(descr: "<U3", shape: [2], data: [UInt8](repeating: 65, count: 24))
        let matrix = NPY.file(descr: ">f8", shape: [2, 2], data: NPY.float64([1, 2, 3, .nan]))
        for field in [Field(name: "x", dtype: .int64), Field(name: "x", dtype: .string), Field(name: "x", dtype: .float32, shape: [2])] {
            survivesMutations(of: [Self.labels, text, matrix]) { try UntrustedInput.npyFile($0, field: field) }
        }
        let tabular = try schema(tabularSchemaJSON)
        survivesMutations(of: [Array(BadInputTests.good(1).utf8)]) { try UntrustedInput.jsonRecord($0, schema: tabular) }
        let vectors = try schema(#"{"name": "c", "fields": [{"name": "s", "dtype": "string"}, {"name": "b", "dtype": "bytes"}, {"name": "v", "dtype": "int16", "shape": [2, null]}]}"#)
        survivesMutations(of: [Array("s,b,v\n\"a,\"\"b\",aGVsbG8=,1 2 3 4\nx,,-5 6\n".utf8)]) { _ = try UntrustedInput.csvText($0, schema: vectors) }
        let tokens = try schema(#"{"name": "t", "fields": [{"name": "tokens", "dtype": "int8", "shape": [4]}, {"name": "at", "dtype": "int64"}]}"#)
        survivesMutations(of: [NPY.littleEndian([UInt16](0..<40))]) {
            _ = try UntrustedInput.tokenBinary($0, schema: tokens, sequenceLength: 4, tokenByteWidth: 2)
        }
    }

    /// The fuzz seeds start where the parsers accept: valid files parse, near misses are refused.
    @Test func theIngestFuzzSeedsAreValidFilesAndNearMisses() throws {
        let corpus = packageRoot.appendingPathComponent("Tests/Fuzz/corpus")
        func seed(_ target: String, _ name: String) throws -> [UInt8] {
            try [UInt8](Data(contentsOf: corpus.appendingPathComponent("\(target)/seed-\(name)")))
        }
        for name in ["stored", "deflated", "zip64", "zip64-deflated", "empty"] { try UntrustedInput.zipArchive(try seed("zip", name)) }
        #expect { try UntrustedInput.zipArchive(try seed("zip", "bad-crc")) } throws: { ($0 as? MBDataError)?.matches(.malformedRecord, "bad CRC-32") == true }
        #expect { try UntrustedInput.zipArchive(try seed("zip", "duplicate")) } throws: { ($0 as? MBDataError)?.matches(.malformedRecord, "appears twice") == true }
        let fuzzSchema = try schema(
            #"{"name": "fuzz", "key": "id", "fields": [{"name": "id", "dtype": "int64"}, {"name": "label", "dtype": "uint8"}, {"name": "score", "dtype": "float32"}, {"name": "half", "dtype": "float16", "shape": [2]}, {"name": "image", "dtype": "uint8", "shape": [2, 3]}, {"name": "tokens", "dtype": "int32", "shape": [null]}, {"name": "flag", "dtype": "bool"}, {"name": "text", "dtype": "string"}, {"name": "blob", "dtype": "bytes"}]}"#)
        #expect(try UntrustedInput.csvText(try seed("csv", "full"), schema: fuzzSchema).count == 3)
        #expect(try UntrustedInput.csvText(try seed("csv", "reordered"), schema: fuzzSchema).count == 1)
        try UntrustedInput.npyFile(try seed("npy-file", "int64"), field: Field(name: "id", dtype: .int64))
        try UntrustedInput.npyFile(try seed("npy-file", "uint8-2x2x3"), field: Field(name: "image", dtype: .uint8, shape: [2, 3]))
        try UntrustedInput.npyFile(try seed("npy-file", "unicode"), field: Field(name: "text", dtype: .string))
        let tokens = try seed("token-source", "uint16-len4")
        #expect(tokens.first == 6)
    }
}
