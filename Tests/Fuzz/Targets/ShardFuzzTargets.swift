import Foundation
import MBData

extension FuzzTarget {
    /// Shard files, manifests, LZ4 frames and the safetensors batches inside them.
    static let shardTargets: [FuzzTarget] = [
        FuzzTarget("lz4-frame", "one LZ4 frame, decoded with a 16 MiB limit, with and without its content checksum") { data in
            try UntrustedInput.lz4Frame([UInt8](data), limit: 1 << 24)
        },
        FuzzTarget("safetensors", "a collated batch: 8-byte header length, JSON header, tensor bytes") { data in
            try UntrustedInput.safetensors([UInt8](data))
        },
        FuzzTarget("shard-footer", "8 bytes (big-endian end of the frames), then a shard footer: entry count and 48-byte entries") { data in
            let bytes = [UInt8](data)
            let framesEnd = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            try UntrustedInput.shardFooter(Array(bytes.dropFirst(8)), framesEnd: framesEnd)
        },
        FuzzTarget("shard-file", "a whole shard file: frames, footer, trailer (footer hash and entries checked)") { data in
            try UntrustedInput.shardFile([UInt8](data))
        },
        FuzzTarget("shard-manifest", "a shard set's manifest.json, decoded and validated against itself") { data in
            try UntrustedInput.shardManifest([UInt8](data))
        },
        FuzzTarget("shard-batch", "one byte choosing batch 0–2, then a safetensors batch checked against a padded plan's manifest") { data in
            try UntrustedInput.shardBatch([UInt8](data))
        },
        FuzzTarget("shard-packed-batch", "one byte choosing batch 0–1, then a packed safetensors batch checked row by row against a packed manifest") { data in
            try UntrustedInput.packedShardBatch([UInt8](data))
        },
    ]
}
