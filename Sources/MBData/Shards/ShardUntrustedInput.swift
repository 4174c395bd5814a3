/// The shard area's parsers of outside bytes, for the fuzz targets and their corpus replay.
extension UntrustedInput {
    /// A whole shard file: trailer, footer hash, footer entries.
    package static func shardFile(_ bytes: [UInt8]) throws {
        _ = try ShardFormat.entries(inFile: bytes)
    }

    /// A `manifest.json`, decoded and validated.
    package static func shardManifest(_ bytes: [UInt8]) throws {
        _ = try ShardManifest.parse(bytes)
    }

    /// A decoded batch checked as `verify` checks it against its manifest and footer entry:
    /// the first byte picks batch 0, 1 or 2 of ``richManifest`` (a padded plan of five samples
    /// in batches of two, with every kind of field), the rest is the safetensors buffer. The
    /// buffer is also read as a trainer reads it: every bytes or string field cut at its offsets.
    package static func shardBatch(_ bytes: [UInt8]) throws {
        let batch = Int(bytes.first ?? 0) % 3
        if let decoded = try? Batch(epoch: 0, index: batch, rank: 0, safetensors: Array(bytes.dropFirst())) {
            for name in decoded.tensors.keys where decoded.tensors[name + ".offsets"] != nil {
                _ = try? decoded.bytes(name)
            }
        }
        let entry = ShardFormat.Entry(
            offset: 0, length: 1, uncompressed: UInt64(max(bytes.count - 1, 1)), epoch: 0, batch: UInt32(batch), rank: 0,
            samples: batch == 2 ? 1 : 2, checksum: 0)
        _ = try ShardSet.checkBatch(Array(bytes.dropFirst()), entry: entry, manifest: try richParsed.get())
    }

    /// Parsed once: decoding the manifest took most of each run of the target.
    private static let richParsed = parsed(richManifest)

    /// A decoded packed batch checked as `verify` checks it (`schemas/shard-format.md` §7
    /// rule 8): the first byte picks batch 0 or 1 of ``packedManifest`` (six samples, one
    /// empty and one split, packed into rows of 8 tokens, two rows a batch, with a
    /// per-segment `label`), the rest is the safetensors buffer.
    package static func packedShardBatch(_ bytes: [UInt8]) throws {
        let manifest = try packedParsed.get()
        guard let packing = manifest.packing else { throw MBDataError(.corruptData, "the packed manifest has no packing member") }
        let batch = Int(bytes.first ?? 0) % 2
        let entry = ShardFormat.Entry(
            offset: 0, length: 1, uncompressed: UInt64(max(bytes.count - 1, 1)), epoch: 0, batch: UInt32(batch), rank: 0, samples: 3, checksum: 0)
        _ = try ShardSet.checkedPackedBatch(Array(bytes.dropFirst()), entry: entry, manifest: manifest, packing: packing)
    }

    private static let packedParsed = parsed(packedManifest)

    private static func parsed(_ text: String) -> Result<ShardManifest, MBDataError> {
        do {
            return .success(try ShardManifest.parse(Array(text.utf8)))
        } catch let error as MBDataError {
            return .failure(error)
        } catch {
            return .failure(MBDataError(.corruptData, "\(error)"))
        }
    }

    /// The manifest `ShardWriter.writePacked` wrote for six samples (`label` int64, `tokens`
    /// int32 of 3, 5, 9, 2, 0 and 7 tokens) packed into rows of 8 tokens (window 4, overlong
    /// split), batches of 2 rows, seed 5, tail pad, one epoch.
    package static let packedManifest = #"{"compression":"lz4-frame level 0","created_at":"2026-12-02T03:27:17.469Z","dataset":{"fingerprint":"xxh64:5e93fecf259d1ad9","max_id":6,"samples":6,"version":1},"format":"mbdata-shards-1","packing":{"batches_per_epoch":[2],"efficiency":0.8125,"field":"tokens","overlong":"split","row_length":8,"statistics":{"dropped_samples":0,"dropped_tokens":0,"empty_samples":1,"row_length":8,"rows":4,"samples":6,"split_samples":1,"tokens":26},"window":4},"plan":{"batches_per_epoch":2,"dropped_per_epoch":0,"epochs":1,"first_epoch":0,"pad_lengths":{},"parameters":{"batch_size":2,"seed":5,"shuffle":true,"tail":"pad","world":1}},"schema":{"fields":[{"dtype":"int64","name":"label","shape":[]},{"dtype":"int32","name":"tokens","shape":[null]}],"name":"p"},"shards":[{"batches":2,"bytes":977,"file":"shard-00000.mbshard","xxh64":"xxh64:dc787a4dff611c6c"}],"totals":{"batches":2,"compressed_bytes":849,"samples":6,"uncompressed_bytes":1408}}"#

    /// The manifest `mbdata shard --batch-size 2 --epochs 1 --seed 5 --pad --pad-to tokens=3`
    /// wrote for five samples of a schema with a padded, a concatenated, a [2, null], a string
    /// and a fixed-shape field.
    package static let richManifest = #"{"compression":"lz4-frame level 0","created_at":"2026-12-01T05:04:59.034Z","dataset":{"fingerprint":"xxh64:7a44491e8c72494e","max_id":5,"samples":5,"version":1},"format":"mbdata-shards-1","plan":{"batches_per_epoch":3,"dropped_per_epoch":0,"epochs":1,"first_epoch":0,"pad_lengths":{"tokens":3},"parameters":{"batch_size":2,"seed":5,"shuffle":true,"tail":"pad","world":1}},"schema":{"fields":[{"dtype":"int32","name":"tokens","shape":[null]},{"dtype":"int16","name":"words","shape":[null]},{"dtype":"float32","name":"pairs","shape":[2,null]},{"dtype":"string","name":"caption","shape":[]},{"dtype":"uint8","name":"x","shape":[2]}],"name":"rich"},"shards":[{"batches":3,"bytes":1626,"file":"shard-00000.mbshard","xxh64":"xxh64:3bbbccd78d7059bb"}],"totals":{"batches":3,"compressed_bytes":1450,"samples":5,"uncompressed_bytes":2854}}"#
}
