import Foundation
import MBData

/// What `inspect` shows of a shard directory.
struct ShardSummary: Encodable {
    var directory: String
    var manifest: ShardManifest
    var compressionRatio: Double
    var framesPerShard: [String: Int]

    init(_ shards: ShardSet) {
        directory = shards.directory
        manifest = shards.manifest
        compressionRatio = Double(manifest.totals.uncompressedBytes) / Double(max(manifest.totals.compressedBytes, 1))
        framesPerShard = Dictionary(zip(manifest.shards.map(\.file), shards.entries.map(\.count)), uniquingKeysWith: +)
    }

    var rendered: String {
        let p = manifest.plan
        let t = manifest.totals
        var lines = [
            "shards   \(directory)  (\(manifest.format))",
            "dataset  version \(manifest.dataset.version), \(manifest.dataset.samples) samples, ids ≤ \(manifest.dataset.maxId), \(manifest.dataset.fingerprint)",
            "plan     seed \(p.parameters.seed), batch \(p.parameters.batchSize), world \(p.parameters.world), tail \(p.parameters.tail.rawValue), split \(p.parameters.split ?? "(all)"), shuffle \(p.parameters.shuffle)",
            "epochs   \(p.firstEpoch)…\(p.firstEpoch &+ (p.epochs &- 1)): \(p.batchesPerEpoch) batches each per rank, \(p.droppedPerEpoch) samples dropped each",
            "batches  \(t.batches), samples \(t.samples)",
            String(
                format: "bytes    %.1f MB uncompressed, %.1f MB compressed (ratio %.2f, %@)", Double(t.uncompressedBytes) / 1e6,
                Double(t.compressedBytes) / 1e6, compressionRatio, manifest.compression),
            "files    \(manifest.shards.count)",
        ]
        if let mixture = manifest.mixture { lines += mixture.summaryLines }
        if let packing = manifest.packing {
            lines.append(packing.summary)
            lines.append("epochs   batches per epoch: \(packing.batchesPerEpoch.map(String.init).joined(separator: ", "))")
        }
        for shard in manifest.shards {
            lines.append("  \(shard.file)  \(shard.bytes) bytes  \(shard.batches) batches  \(shard.xxh64)")
        }
        return lines.joined(separator: "\n")
    }
}

func isDirectory(_ path: String) -> Bool {
    var flag: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
}
