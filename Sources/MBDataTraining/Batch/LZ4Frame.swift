import CLZ4

/// One batch ↔ one standard LZ4 frame (content size on, and the content checksum unless the
/// caller leaves it out), through the system liblz4, so `lz4 -d` and Python's `lz4.frame`
/// read what this writes.
///
/// A ``ReadyBatch/frame`` decodes with `LZ4Frame.decompress(batch.frame)` into a safetensors
/// buffer, which ``Batch/init(epoch:index:rank:safetensors:)`` reads.
/// Every function is thread-safe (each call uses its own liblz4 context) and blocks while it
/// works: call it from a worker thread, not from the cooperative pool, for large frames.
public enum LZ4Frame {
    /// Compresses `input` into one frame. Level 0 (default) is LZ4's fast mode; 1–12 are HC levels.
    /// `contentChecksum` (default true) adds LZ4's xxh32 of the content, which shard sets
    /// require; on incompressible data it costs several times the compression itself, so a
    /// frame whose xxh64 travels beside it (a live stream's message header) leaves it out.
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/storage`` if liblz4 fails.
    public static func compress(_ input: [UInt8], level: Int32 = 0, contentChecksum: Bool = true) throws -> [UInt8] {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.contentSize = UInt64(input.count)
        preferences.frameInfo.contentChecksumFlag = contentChecksum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.compressionLevel = level
        let bound = LZ4F_compressFrameBound(input.count, &preferences)
        var written = 0
        // Not zero-filled first: liblz4 writes every byte it reports.
        let output = [UInt8](unsafeUninitializedCapacity: bound) { target, initialized in
            written = input.withUnsafeBytes { source in
                LZ4F_compressFrame(target.baseAddress, bound, source.baseAddress, input.count, &preferences)
            }
            initialized = LZ4F_isError(written) == 0 ? written : 0
        }
        guard LZ4F_isError(written) == 0 else {
            throw MBDataError(.storage, "LZ4 compression failed: \(String(cString: LZ4F_getErrorName(written)))")
        }
        return output
    }

    /// The content size a frame declares, read from its header without decoding.
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/corruptData`` when `frame` is not an
    ///   LZ4 frame, declares no content size, or declares more than 255 times its own size
    ///   (no frame can decode to that).
    public static func contentSize(of frame: UnsafeRawBufferPointer) throws -> Int {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw MBDataError(.storage, "cannot create an LZ4 decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var info = LZ4F_frameInfo_t()
        var consumed = frame.count
        let result = LZ4F_getFrameInfo(context, &info, frame.baseAddress, &consumed)
        guard LZ4F_isError(result) == 0 else {
            throw MBDataError(.corruptData, "not an LZ4 frame: \(String(cString: LZ4F_getErrorName(result)))")
        }
        guard info.contentSize > 0 else {
            throw MBDataError(.corruptData, "LZ4 frame declares no content size")
        }
        // Compared before any conversion: a header may declare up to 2^64 − 1 bytes.
        guard info.contentSize / UInt64(maxExpansion) < UInt64(frame.count) else {
            throw MBDataError(
                .corruptData, "LZ4 frame of \(frame.count) bytes declares \(info.contentSize) bytes of content, more than \(maxExpansion) times its size")
        }
        return Int(info.contentSize)
    }

    /// No LZ4 frame decodes to 255 times its own size: a sequence of n bytes (token, 2-byte
    /// offset, n − 3 match-length bytes) decodes to at most 255·(n − 3) + 18 bytes, and the
    /// frame header, block sizes and end mark only add bytes to the frame. A header declaring
    /// more is corrupt, and is refused before its buffer is allocated.
    package static let maxExpansion = 255

    /// Decodes one frame straight into `output`, which must be exactly the declared content
    /// size. liblz4 verifies the content checksum unless `verifyingContentChecksum` is false,
    /// for a caller that has already checked a checksum of the whole frame (the shard
    /// footer's or the wire message's xxh64, several times faster here than liblz4's xxh32).
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/corruptData`` when the frame is
    ///   corrupt or truncated, decodes to another size than `output`, or has bytes after its end.
    public static func decompress(
        _ frame: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, verifyingContentChecksum: Bool = true
    ) throws {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw MBDataError(.storage, "cannot create an LZ4 decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var options = LZ4F_decompressOptions_t()
        options.skipChecksums = verifyingContentChecksum ? 0 : 1
        var sourceOffset = 0
        var produced = 0
        while true {
            var sourceSize = frame.count - sourceOffset
            var targetSize = output.count - produced
            let hint = LZ4F_decompress(
                context, output.baseAddress.map { $0 + produced }, &targetSize, frame.baseAddress.map { $0 + sourceOffset },
                &sourceSize, &options)
            guard LZ4F_isError(hint) == 0 else {
                throw MBDataError(.corruptData, "corrupt LZ4 frame: \(String(cString: LZ4F_getErrorName(hint)))")
            }
            sourceOffset += sourceSize
            produced += targetSize
            if hint == 0 { break }
            if sourceSize == 0 && targetSize == 0 {
                throw MBDataError(.corruptData, "truncated LZ4 frame after \(sourceOffset) of \(frame.count) bytes")
            }
        }
        guard produced == output.count else {
            throw MBDataError(.corruptData, "LZ4 frame decoded to \(produced) bytes, declared \(output.count)")
        }
        guard sourceOffset == frame.count else {
            throw MBDataError(.corruptData, "\(frame.count - sourceOffset) bytes follow the end of the LZ4 frame")
        }
    }

    /// Decodes one frame into a new buffer, refusing a declared size above `limit` (bytes,
    /// default 2 GiB) before anything is allocated.
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/corruptData``, as
    ///   ``decompress(_:into:verifyingContentChecksum:)`` does, or when the size passes `limit`.
    public static func decompress(_ frame: [UInt8], limit: Int = 1 << 31, verifyingContentChecksum: Bool = true) throws -> [UInt8] {
        try frame.withUnsafeBytes { try decompress($0, limit: limit, verifyingContentChecksum: verifyingContentChecksum) }
    }

    /// Decodes one frame (from any memory, a mapped file say) into a new buffer, refusing a
    /// declared size above `limit` (bytes, default 2 GiB); the buffer is not zero-filled first.
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/corruptData``, as the other overloads do.
    public static func decompress(
        _ frame: UnsafeRawBufferPointer, limit: Int = 1 << 31, verifyingContentChecksum: Bool = true
    ) throws -> [UInt8] {
        let size = try contentSize(of: frame)
        guard size <= limit else {
            throw MBDataError(.corruptData, "LZ4 frame declares \(size) bytes, above the limit of \(limit)")
        }
        return try [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            try decompress(frame, into: UnsafeMutableRawBufferPointer(buffer), verifyingContentChecksum: verifyingContentChecksum)
            initialized = size
        }
    }
}
