// The packing benchmark's Swift side (Benchmarks/packing/bench.py runs it): rows of packed
// tokens per second through mbdata's own code, one JSON object per round on stdout.
//
//   mbdata-packing-bench memory DATA_DIR L W BATCH ROUNDS
//       SequencePacker + PackedTensors on lengths.npy and tokens.int32 held in memory
//       (the peer of Grain's in-memory iterator): pack the epoch, then build every batch's
//       tokens, segment_ids and positions tensors.
//   mbdata-packing-bench shards SHARD_DIR ROUNDS
//       MultiBatchLoader(shards:) over a packed shard set (plan and epochs from its manifest).
//   mbdata-packing-bench live DB L W BATCH SEED SHUFFLE(0|1) ROUNDS
//       MultiBatchLoader(dataset:packing:) reading the dataset live, first epoch.
//   mbdata-packing-bench ingest DB SCHEMA JSONL
//   mbdata-packing-bench shard DB OUT L W BATCH SEED SHUFFLE(0|1) OVERLONG
//       What `mbdata ingest` and `mbdata shard --pack` call (Dataset.ingest, packedPlan,
//       ShardWriter.writePacked), for when only this target is built: the harness prefers the
//       mbdata binary and says which one ran.
//   mbdata-packing-bench mixture DB BATCH SEED ROUNDS [SCHEMA JSONL]
//       The mixture-overhead case (issue 14 §6), see runMixtureOverhead.
//   mbdata-packing-bench producer DB SCHEMA JSONL BATCH SEED ROUNDS
//       The same overhead in the read path alone, see runProducerOverhead.
//
// The trainer counts rows and non-padding tokens (segment_ids ≠ 0) of every batch, so the
// figures come from what the loader delivered, not from the manifest.
import Foundation
import MBData
import Synchronization

/// Rows and non-padding tokens of the batches a run delivered.
final class Tally: Sendable {
    private let counts = Mutex<(batches: Int, rows: Int, tokens: Int)>((0, 0, 0))

    func add(rows: Int, tokens: Int) {
        counts.withLock { $0 = ($0.batches + 1, $0.rows + rows, $0.tokens + tokens) }
    }

    var totals: (batches: Int, rows: Int, tokens: Int) { counts.withLock { $0 } }
}

/// Non-padding tokens of a `[rows, L]` int32 segment-ids tensor.
func nonPaddingTokens(_ segmentIDs: Tensor) -> Int {
    segmentIDs.withUnsafeBytes { raw in
        raw.bindMemory(to: Int32.self).reduce(0) { $1 == 0 ? $0 : $0 + 1 }
    }
}

/// A do-nothing trainer that counts what it was given.
struct CountingTrainer: Trainer {
    let tally: Tally

    func train(_ batch: Batch, context: TrainingContext) async throws {
        guard let segmentIDs = batch[PackedTensors.segmentIDsName] else {
            throw MBDataError(.invalidArgument, "batch \(batch.index) has no \(PackedTensors.segmentIDsName): not a packed batch")
        }
        tally.add(rows: segmentIDs.shape.first ?? 0, tokens: nonPaddingTokens(segmentIDs))
    }
}

/// One round's figures as a JSON line.
func report(_ fields: [String: Any]) {
    let line = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) + Data("\n".utf8)
    FileHandle.standardOutput.write(line)
}

/// The int64 values of a version-1 little-endian `.npy` vector (what generate.py writes).
func readInt64Vector(npy path: String) throws -> [Int] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard data.count >= 10, data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)), data[6] == 1 else {
        throw MBDataError(.invalidArgument, "\(path): not a version-1 .npy file")
    }
    let headerEnd = 10 + Int(data[8]) + Int(data[9]) << 8
    let header = String(decoding: data[10..<headerEnd], as: UTF8.self)
    guard header.contains("'<i8'"), header.contains("'fortran_order': False") else {
        throw MBDataError(.invalidArgument, "\(path): expected a little-endian int64 vector, header \(header)")
    }
    return data[headerEnd...].withUnsafeBytes { raw in raw.bindMemory(to: Int64.self).map { Int($0) } }
}

/// Packs the whole epoch in memory and builds every batch's tensors, as Grain's in-memory
/// iterator does its work.
func runInMemory(data: String, rowLength: Int, window: Int, batchRows: Int, rounds: Int) throws {
    let lengths = try readInt64Vector(npy: (data as NSString).appendingPathComponent("lengths.npy"))
    let tokenBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: (data as NSString).appendingPathComponent("tokens.int32"))))
    var offsets = [Int](repeating: 0, count: lengths.count + 1)
    for (index, length) in lengths.enumerated() { offsets[index + 1] = offsets[index] + length }
    guard offsets.last! * 4 == tokenBytes.count else {
        throw MBDataError(.invalidArgument, "tokens.int32 holds \(tokenBytes.count / 4) tokens, lengths.npy sums to \(offsets.last!)")
    }
    let packer = try SequencePacker(rowLength: rowLength, window: window, overlong: .split)
    for round in 0..<rounds {
        let start = Date()
        let packed = packer.pack(lengths)
        let packedSeconds = Date().timeIntervalSince(start)
        var tokens = 0
        for first in stride(from: 0, to: packed.rows.count, by: batchRows) {
            let rows = Array(packed.rows[first..<min(first + batchRows, packed.rows.count)])
            let tensors = try PackedTensors.tensors(field: "tokens", dtype: .int32, rows: rows, rowLength: rowLength) { sample in
                Array(tokenBytes[offsets[sample] * 4..<offsets[sample + 1] * 4])
            }
            tokens += nonPaddingTokens(tensors[1])
        }
        let seconds = Date().timeIntervalSince(start)
        precondition(tokens == packed.statistics.tokens, "the tensors hold \(tokens) tokens, the packer placed \(packed.statistics.tokens)")
        report([
            "mode": "memory", "round": round, "window": window, "rows": packed.rows.count, "tokens": tokens,
            "efficiency": packed.statistics.efficiency, "split_samples": packed.statistics.splitSamples,
            "pack_seconds": packedSeconds, "seconds": seconds,
        ])
    }
}

/// Reads a packed shard set through the loader, `rounds` times.
func runShards(directory: String, rounds: Int) async throws {
    let manifest = try ShardSet(directory: directory).manifest
    guard manifest.packing != nil else { throw MBDataError(.invalidArgument, "\(directory) is not a packed shard set") }
    let epochs = manifest.plan.firstEpoch..<(manifest.plan.firstEpoch + manifest.plan.epochs)
    for round in 0..<rounds {
        let tally = Tally()
        let start = Date()
        let loader = try await MultiBatchLoader(shards: directory, configuration: .init(plan: manifest.plan.parameters, epochs: epochs))
        let ready = Date()
        try await loader.run(trainer: CountingTrainer(tally: tally))
        let end = Date()
        let totals = tally.totals
        report([
            "mode": "shards", "round": round, "batches": totals.batches, "rows": totals.rows, "tokens": totals.tokens,
            "open_seconds": ready.timeIntervalSince(start), "seconds": end.timeIntervalSince(start),
        ])
    }
}

/// Reads the dataset live through the packing loader, first epoch, `rounds` times. The
/// loader's start packs the epoch's lengths once to count its batches (`open_seconds`).
func runLive(database: String, rowLength: Int, window: Int, batchRows: Int, seed: UInt64, shuffle: Bool, rounds: Int) async throws {
    let dataset = try Dataset(path: database)
    let spec = try PackingSpec(field: "tokens", rowLength: rowLength, window: window, overlong: .split)
    var configuration = MultiBatchLoader.Configuration(batchSize: batchRows, seed: seed, epochs: 0..<1)
    configuration.shuffle = shuffle
    for round in 0..<rounds {
        let tally = Tally()
        let start = Date()
        let loader = try await MultiBatchLoader(dataset: dataset, packing: spec, configuration: configuration)
        let ready = Date()
        try await loader.run(trainer: CountingTrainer(tally: tally))
        let end = Date()
        let totals = tally.totals
        report([
            "mode": "live", "round": round, "window": window, "batches": totals.batches, "rows": totals.rows, "tokens": totals.tokens,
            "open_seconds": ready.timeIntervalSince(start), "seconds": end.timeIntervalSince(start),
        ])
    }
}

/// `mbdata ingest DB --schema SCHEMA JSONL` through the library.
func runIngest(database: String, schema: String, jsonl: String) async throws {
    let start = Date()
    let summaries = try await Dataset.ingest(into: database, SourceSpec(paths: [jsonl]), schema: try Schema(contentsOf: schema))
    report(["mode": "ingest", "seconds": Date().timeIntervalSince(start), "sources": summaries.count])
}

/// `mbdata shard DB --out OUT --pack tokens=L --pack-window W --batch-size BATCH …` through the
/// library: the manifest's packing statistics and the seconds it took.
func runShard(
    database: String, out: String, rowLength: Int, window: Int, batchRows: Int, seed: UInt64, shuffle: Bool, overlong: OverlongPolicy
) async throws {
    let start = Date()
    let dataset = try Dataset(path: database)
    let parameters = PlanParameters(seed: seed, batchSize: batchRows, world: 1, tail: .drop, split: nil, shuffle: shuffle)
    let spec = try PackingSpec(field: "tokens", rowLength: rowLength, window: window, overlong: overlong)
    let manifest = try await ShardWriter.writePacked(
        dataset: dataset, plan: try await dataset.packedPlan(parameters, packing: spec), epochs: 0..<1, to: out)
    guard let packing = manifest.packing else { throw MBDataError(.invalidArgument, "\(out): the manifest has no packing member") }
    report([
        "mode": "shard", "window": window, "seconds": Date().timeIntervalSince(start), "batches": manifest.totals.batches,
        "rows": packing.statistics.rows, "tokens": packing.statistics.tokens, "efficiency": packing.efficiency,
    ])
}

/// Counts the rows of unpacked batches (their `_id` tensor's length).
struct RowCountingTrainer: Trainer {
    let tally: Tally

    func train(_ batch: Batch, context: TrainingContext) async throws {
        tally.add(rows: batch["_id"]?.shape.first ?? 0, tokens: 0)
    }
}

/// User and system CPU seconds of this process so far: on shared cores, steadier than wall
/// time for comparing two cases of one process.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
        getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The sources of the mixture-overhead cases and their weights (issue 14's example mixture).
let mixtureNames = ["web", "code", "books"]
let mixtureWeights = [0.6, 0.25, 0.15]

/// The mixture-overhead case of issue 14 §6: the live loader over a mixture of three
/// datasets (web 0.6, code 0.25, books 0.15) against the same loader over one dataset, the
/// same number of samples each (the mixture's epoch size is DB's sample count), unpacked,
/// shuffled, first epoch; rounds interleaved, one line per round and case.
///
/// - `mixture`: the three sources are copies of DB, each drawn in part (60%, 25%, 15% of its
///   rows), so the epoch's rows are spread over three files' pages.
/// - `parts` (when SCHEMA and JSONL, DB's source, are given): the sources are DB's rows cut
///   in three consecutive parts of 60%, 25% and 15%, each drawn whole: the epoch reads the
///   same rows as one dataset's, and the difference is the mixture's own work.
func runMixtureOverhead(arguments: ArraySlice<String>) async throws -> Int32 {
    let a = Array(arguments)
    guard a.count == 4 || a.count == 6, let batch = Int(a[1]), let seed = UInt64(a[2]), let rounds = Int(a[3]) else {
        FileHandle.standardError.write(Data("usage: mbdata-packing-bench mixture DB BATCH SEED ROUNDS [SCHEMA JSONL]\n".utf8))
        return 64
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbdata-mixture-\(ProcessInfo.processInfo.processIdentifier)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let (names, weights) = (mixtureNames, mixtureWeights)
    // MIXTURE_CASES=one,parts (say) runs only those cases, to profile one of them.
    let only = ProcessInfo.processInfo.environment["MIXTURE_CASES"]?.split(separator: ",").map(String.init)
    let wanted = { (name: String) in only?.contains(name) ?? true }
    let one = try Dataset(path: a[0])
    let samples = try await one.info().sampleCount
    let single = MultiBatchLoader.Configuration(batchSize: batch, seed: seed, epochs: 0..<1)
    var cases = [("one", single)]
    if wanted("mixture") {
        for name in names {
            try FileManager.default.copyItem(atPath: a[0], toPath: directory.appendingPathComponent("\(name).mbdb").path)
        }
        let copies = try names.map { try Dataset(path: directory.appendingPathComponent("\($0).mbdb").path) }
        var mixed = single
        mixed.mixture = zip(copies, weights).map { MixtureComponent(dataset: $0, weight: .proportion($1)) }
        mixed.epochSize = samples
        cases.append(("mixture", mixed))
    }
    if a.count == 6 && wanted("parts") {
        let parts = try await keptParts(schema: a[4], jsonl: a[5], weights: weights, names: names, beside: a[0])
        var whole = single
        whole.mixture = zip(parts, weights).map { MixtureComponent(dataset: $0, weight: .proportion($1)) }
        whole.epochSize = samples
        cases.append(("parts", whole))
    }
    cases = cases.filter { wanted($0.0) }
    // MIXTURE_PACK=L packs the `tokens` field into rows of L tokens (BATCH then counts rows),
    // issue 14's `pack={"tokens": 2048}, batch_size=64` example; the loader's start, which
    // packs the epoch's lengths, is inside the clock.
    let packing = try ProcessInfo.processInfo.environment["MIXTURE_PACK"].flatMap(Int.init).map {
        try PackingSpec(field: "tokens", rowLength: $0, overlong: .split)
    }
    for round in 0..<rounds {
        for (name, configuration) in cases {
            let tally = Tally()
            let start = Date()
            let cpuStart = processCPUSeconds()
            let loader: MultiBatchLoader
            switch (name == "one", packing) {
            case (true, nil): loader = try await MultiBatchLoader(dataset: one, configuration: configuration)
            case (false, nil): loader = try await MultiBatchLoader(configuration: configuration)
            case (true, let spec?): loader = try await MultiBatchLoader(dataset: one, packing: spec, configuration: configuration)
            case (false, let spec?): loader = try await MultiBatchLoader(packing: spec, configuration: configuration)
            }
            let opened = Date()
            if packing == nil {
                try await loader.run(trainer: RowCountingTrainer(tally: tally))
            } else {
                try await loader.run(trainer: CountingTrainer(tally: tally))
            }
            let totals = tally.totals
            report([
                "mode": "mixture", "measured": true, "case": name, "round": round, "batches": totals.batches, "rows": totals.rows,
                "tokens": totals.tokens, "packed": packing?.rowLength ?? 0, "open_seconds": opened.timeIntervalSince(start),
                "seconds": Date().timeIntervalSince(start), "cpu_seconds": processCPUSeconds() - cpuStart,
            ])
        }
    }
    return 0
}

/// The parts of ``ingestParts(schema:jsonl:weights:names:into:)`` kept in `DB.parts/` beside
/// the dataset, made again when the JSONL's size or modification time changed.
func keptParts(schema: String, jsonl: String, weights: [Double], names: [String], beside database: String) async throws -> [Dataset] {
    let directory = URL(fileURLWithPath: database + ".parts")
    let attributes = try FileManager.default.attributesOfItem(atPath: jsonl)
    let stamp = "\(attributes[.size] ?? 0) \((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0) \(weights)"
    let stampFile = directory.appendingPathComponent("stamp")
    if (try? String(contentsOf: stampFile, encoding: .utf8)) == stamp {
        return try names.map { try Dataset(path: directory.appendingPathComponent("\($0)-part.mbdb").path) }
    }
    try? FileManager.default.removeItem(at: directory)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let parts = try await ingestParts(schema: schema, jsonl: jsonl, weights: weights, names: names, into: directory)
    try stamp.write(to: stampFile, atomically: true, encoding: .utf8)
    return parts
}

/// JSONL's lines cut into consecutive parts of `weights` (the last takes the rest), each
/// ingested as a dataset `names[i]-part.mbdb` in `directory`.
func ingestParts(schema: String, jsonl: String, weights: [Double], names: [String], into directory: URL) async throws -> [Dataset] {
    let lines = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true)
    var start = 0
    var parts: [Dataset] = []
    for (index, (name, weight)) in zip(names, weights).enumerated() {
        let end = index == names.count - 1 ? lines.count : start + Int((Double(lines.count) * weight).rounded())
        let source = directory.appendingPathComponent("\(name)-part.jsonl").path
        try (lines[start..<end].joined(separator: "\n") + "\n").write(toFile: source, atomically: true, encoding: .utf8)
        let path = directory.appendingPathComponent("\(name)-part.mbdb").path
        _ = try await Dataset.ingest(into: path, SourceSpec(paths: [source]), schema: try Schema(contentsOf: schema))
        try FileManager.default.removeItem(atPath: source)
        parts.append(try Dataset(path: path))
        start = end
    }
    return parts
}

let usage = """
    usage: mbdata-packing-bench memory DATA_DIR L W BATCH ROUNDS
           mbdata-packing-bench ingest DB SCHEMA JSONL
           mbdata-packing-bench shard DB OUT L W BATCH SEED SHUFFLE(0|1) OVERLONG(split|drop)
           mbdata-packing-bench shards SHARD_DIR ROUNDS
           mbdata-packing-bench live DB L W BATCH SEED SHUFFLE(0|1) ROUNDS
           mbdata-packing-bench mixture DB BATCH SEED ROUNDS [SCHEMA JSONL]
           mbdata-packing-bench producer DB SCHEMA JSONL BATCH SEED ROUNDS
    """
let arguments = CommandLine.arguments.dropFirst()
AllocatorTuning.applyForBatchWorkloads()
do {
    switch (arguments.first, arguments.count) {
    case ("memory", 6):
        let a = Array(arguments)
        try runInMemory(data: a[1], rowLength: Int(a[2])!, window: Int(a[3])!, batchRows: Int(a[4])!, rounds: Int(a[5])!)
    case ("shards", 3):
        let a = Array(arguments)
        try await runShards(directory: a[1], rounds: Int(a[2])!)
    case ("live", 8):
        let a = Array(arguments)
        try await runLive(
            database: a[1], rowLength: Int(a[2])!, window: Int(a[3])!, batchRows: Int(a[4])!, seed: UInt64(a[5])!, shuffle: a[6] == "1",
            rounds: Int(a[7])!)
    case ("ingest", 4):
        let a = Array(arguments)
        try await runIngest(database: a[1], schema: a[2], jsonl: a[3])
    case ("shard", 9):
        let a = Array(arguments)
        guard let overlong = OverlongPolicy(rawValue: a[8]) else { throw MBDataError(.invalidArgument, "overlong must be split or drop") }
        try await runShard(
            database: a[1], out: a[2], rowLength: Int(a[3])!, window: Int(a[4])!, batchRows: Int(a[5])!, seed: UInt64(a[6])!,
            shuffle: a[7] == "1", overlong: overlong)
    case ("producer", 7):
        let a = Array(arguments)
        try await runProducerOverhead(database: a[1], schema: a[2], jsonl: a[3], batch: Int(a[4])!, seed: UInt64(a[5])!, rounds: Int(a[6])!)
    case ("mixture", _):
        exit(try await runMixtureOverhead(arguments: arguments.dropFirst()))
    default:
        FileHandle.standardError.write(Data((usage + "\n").utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
