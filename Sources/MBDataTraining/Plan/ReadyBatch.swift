/// One batch of a plan, collated and compressed, ready to store or send.
public struct ReadyBatch: Sendable, Hashable {
    /// The epoch the batch belongs to.
    public var epoch: Int
    /// The global batch index within the epoch.
    public var batch: Int
    /// The rank whose slice of the global batch this is (`0..<world`).
    public var rank: Int
    /// Real (non-padding) samples in the batch.
    public var sampleCount: Int
    /// Bytes of the safetensors buffer inside the frame.
    public var uncompressedSize: Int
    /// One LZ4 frame holding the safetensors buffer.
    public var frame: [UInt8]
    /// xxh64 of `frame`.
    public var checksum: UInt64

    /// A batch as received or read from elsewhere (a ``RemoteBatchSource`` delivers these).
    /// Nothing is checked here; the loader checks `checksum` against `frame` and the decoded
    /// size against `uncompressedSize` before a trainer sees the batch.
    public init(epoch: Int, batch: Int, rank: Int, sampleCount: Int, uncompressedSize: Int, frame: [UInt8], checksum: UInt64) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
        self.sampleCount = sampleCount
        self.uncompressedSize = uncompressedSize
        self.frame = frame
        self.checksum = checksum
    }
}
