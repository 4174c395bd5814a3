// The loader benchmark: a do-nothing trainer (it touches one byte of every tensor) fed by
// MultiBatchLoader from a shard directory at k = 1, 2 and 4, against the ceiling measured
// in the same run — LZ4 decompression of the same frames, held in memory, on every core.
//
//   swift run -c release mbdata-loader-bench SHARD_DIR
//   LOADER_K=2 (the k to run, comma-separated)  CEILING=0 (skip the ceilings)
//
// Prints batches/s, GB/s of decoded batch bytes, the ratio to the ceiling and the peak
// resident memory (VmHWM) against (depth + k) × batch size + 64 MiB.
import Foundation
import MBData

struct Touch: Trainer {
    func train(_ batch: Batch, context: TrainingContext) async throws {
        var sum = 0
        for tensor in batch.tensors.values where tensor.byteCount > 0 {
            sum &+= tensor.withUnsafeBytes { Int($0[0]) &+ Int($0[$0.count - 1]) }
        }
        if sum == -1 { print(sum) }
    }
}

func peakResidentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kilobytes / 1024
}

// The loader's batch buffers reuse their pages instead of page-faulting them in again
// (AllocatorTuning); the loader measured here is the one `mbdata` and the samples run.
AllocatorTuning.applyForBatchWorkloads()
let directory = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Benchmarks/work/shards"
let shards: ShardSet
do {
    shards = try ShardSet(directory: directory)
} catch {
    print("error: \(error)  (make one with: mbdata shard DB --out DIR --batch-size 256)")
    exit(1)
}
let manifest = shards.manifest
let p = manifest.plan.parameters
let epochs = manifest.plan.firstEpoch..<(manifest.plan.firstEpoch + manifest.plan.epochs)
let batchBytes = Double(manifest.totals.uncompressedBytes) / Double(max(manifest.totals.batches, 1))
let cores = ProcessInfo.processInfo.activeProcessorCount
print("shards: \(directory): \(manifest.totals.batches) batches, \(String(format: "%.2f", Double(manifest.totals.uncompressedBytes) / 1e9)) GB decoded, batch \(String(format: "%.2f", batchBytes / 1e6)) MB, \(cores) cores")

// Every shard file read once first, so that k = 1 does not pay for bringing them into the page
// cache (the ceiling holds its frames in memory too).
for shard in manifest.shards {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(shard.file)))
    while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty {}
    try handle.close()
}
print(String(format: "baseline: peak RSS %.0f MiB before the loader runs", peakResidentMiB()))
// The loader first, so that the peak resident memory it reports is its own.
var results: [(k: Int, batchesPerSecond: Double, gigabytesPerSecond: Double, peakMiB: Double, boundMiB: Double)] = []
let environment = ProcessInfo.processInfo.environment
let ks = (environment["LOADER_K"] ?? "1,2,4").split(separator: ",").compactMap { Int($0) }
for k in ks {
    var config = MultiBatchLoader.Configuration(plan: p, epochs: epochs)
    config.concurrency = k
    let loader = try await MultiBatchLoader(shards: directory, configuration: config)
    let start = Date()
    try await loader.run(trainer: Touch())
    let seconds = Date().timeIntervalSince(start)
    let rate = Double(manifest.totals.uncompressedBytes) / seconds / 1e9
    let bound = (Double(config.prefetchDepth + k) * batchBytes) / 1_048_576 + 64
    results.append((k, Double(manifest.totals.batches) / seconds, rate, peakResidentMiB(), bound))
}

// The ceilings: every frame read into memory first, then decoded by `cores` threads, each
// into its own reused buffer (as `lz4 -b` does). The target's ceiling is liblz4's frame
// decoding as `lz4 -d` does it, content checksum verified; the loader does the same job but
// checks the footer's xxh64 of the frame instead, which the second figure times alone.
var ceiling = Double.nan
var sameWork = Double.nan
if environment["CEILING"] != "0" {
    var frames: [[UInt8]] = []
    for (shardIndex, shard) in manifest.shards.enumerated() {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(shard.file))))
        for entry in shards.entries[shardIndex] {
            frames.append(Array(data[Int(entry.offset)..<Int(entry.offset + entry.length)]))
        }
    }
    let held = frames
    frames = []
    let sizes = try held.map { frame in try frame.withUnsafeBytes { try LZ4Frame.contentSize(of: $0) } }
    func decodeAll(contentChecksum: Bool, frameHash: Bool) -> Double {
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: cores) { worker in
            var output = [UInt8](repeating: 0, count: sizes.max() ?? 0)
            for index in stride(from: worker, to: held.count, by: cores) {
                if frameHash { precondition(ShardFormat.xxh64(held[index]) != 1) }
                held[index].withUnsafeBytes { input in
                    output.withUnsafeMutableBytes { out in
                        try! LZ4Frame.decompress(
                            input, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<sizes[index]]),
                            verifyingContentChecksum: contentChecksum)
                    }
                }
            }
        }
        return Double(manifest.totals.uncompressedBytes) / Date().timeIntervalSince(start) / 1e9
    }
    ceiling = decodeAll(contentChecksum: true, frameHash: false)
    sameWork = decodeAll(contentChecksum: false, frameHash: true)
    let bare = decodeAll(contentChecksum: false, frameHash: false)
    print(String(format: "ceiling: liblz4 frame decoding, content checksum verified, %d cores: %.2f GB/s", cores, ceiling))
    print(String(format: "  the loader's per-frame work alone (frame xxh64 + decoding without liblz4's checksum): %.2f GB/s", sameWork))
    print(String(format: "  decoding alone, no checksum at all: %.2f GB/s", bare))
}

for r in results {
    print(
        String(
            format:
                "k=%d: %.0f batches/s, %.2f GB/s decoded, %.0f%% of the ceiling (%.0f%% of the per-frame work alone); peak RSS %.0f MiB (bound (depth + k) × batch + 64 MiB = %.0f MiB)",
            r.k, r.batchesPerSecond, r.gigabytesPerSecond, r.gigabytesPerSecond / ceiling * 100, r.gigabytesPerSecond / sameWork * 100,
            r.peakMiB, r.boundMiB))
}
