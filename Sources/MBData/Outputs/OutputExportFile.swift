/// One exported file: an ``AtomicFile`` filled through a buffer, so that appending a row
/// costs no system call and a failed export leaves no file (and no part of one) behind.
final class OutputExportFile {
    /// Bytes collected before they are written out.
    static let bufferBytes = 1 << 20

    private let file: AtomicFile
    /// What the next flush writes; appended to directly by the sinks.
    var buffer: [UInt8] = []

    init(path: String) throws {
        file = try AtomicFile(path: path)
        buffer.reserveCapacity(Self.bufferBytes + (64 << 10))
    }

    /// Writes the buffer out once it holds ``bufferBytes`` or more.
    func flushIfFull() throws {
        if buffer.count >= Self.bufferBytes { try flush() }
    }

    /// Writes what is left, fsyncs and renames the file into place.
    func commit() throws {
        try flush()
        try file.commit()
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try file.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
