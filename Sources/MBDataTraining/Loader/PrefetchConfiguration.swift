import Foundation

/// How a prefetcher (and `mbdata serve`'s live streams) prepare batches: how many threads,
/// how far ahead, how hard to compress, which fields to pad.
public struct PrefetchConfiguration: Sendable, Hashable {
    /// Batches claimed but not yet taken by the consumer, at most (back-pressure). Default 8.
    public var depth: Int = 8
    /// Batches read, collated and compressed at once, at most (jobs on the process-wide
    /// ``BlockingExecutor``, whose size bounds them too). Default: the number of active cores.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// LZ4 level: 0 (default) is the fast mode, 1–12 HC.
    public var compressionLevel: Int32 = 0
    /// Fields with a variable first dimension to pad to a fixed length, by field name: a
    /// field with length L arrives as `name` `[B, L, …]`, zero-padded and with longer values
    /// truncated, plus `name.lengths` (int64 `[B]`, each row's kept length) instead of
    /// `name.offsets`. Default: none. Another field, or a length below 1, is refused with
    /// `.invalidArgument` when the prefetcher or loader is made.
    public var padLengths: [String: Int] = [:]
    /// Whether each frame carries LZ4's content checksum (an xxh32 of the batch). Default
    /// true, as shard sets require; a daemon's live stream turns it off, since every message
    /// header carries the frame's xxh64.
    public var frameContentChecksum = true

    /// The defaults: depth 8, one worker per active core, LZ4 fast mode, no padding.
    public init() {}
}
