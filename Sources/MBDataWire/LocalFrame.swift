import MBDataTraining

/// The payload of a local batch message (schemas/serve-protocol.md §4, protocol 1.3): where a
/// spooled batch's LZ4 frame lies in a shard file on the daemon's host, for a client on that
/// host that reads the frame itself instead of receiving its bytes.
///
/// A client opens `path` read-only, checks that it is a regular file whose `device` and
/// `inode` are these (the file the daemon has open, not one written over it since) and that
/// `offset + length` lies within it, reads the `length` bytes at `offset` and checks their
/// xxh64 against `frameChecksum` before it decodes them as a batch message's frame.
public struct LocalFrame: Codable, Sendable, Equatable {
    /// The shard file's absolute path on the daemon's host.
    public var path: String
    /// The `st_dev` of the file the daemon has open.
    public var device: UInt64
    /// The `st_ino` of the file the daemon has open.
    public var inode: UInt64
    /// Where the frame starts in the file.
    public var offset: UInt64
    /// Bytes of the frame.
    public var length: UInt64
    /// The frame's xxh64 as 16 lowercase hexadecimal digits (a JSON number cannot hold every
    /// 64-bit value exactly).
    public var frameChecksum: String

    /// A local frame's place; `frameChecksum` is written as 16 hexadecimal digits.
    public init(path: String, device: UInt64, inode: UInt64, offset: UInt64, length: UInt64, frameChecksum: UInt64) {
        self.path = path
        self.device = device
        self.inode = inode
        self.offset = offset
        self.length = length
        self.frameChecksum = XXH64.hex(frameChecksum)
    }

    enum CodingKeys: String, CodingKey {
        case path, device, inode, offset, length
        case frameChecksum = "frame_checksum"
    }
}

