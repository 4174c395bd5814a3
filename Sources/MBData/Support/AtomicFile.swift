import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A file written under a temporary name, fsynced, then renamed into place, with the
/// directory fsynced: readers see the old file or the whole new one, never a part.
final class AtomicFile {
    let path: String
    private let temporaryPath: String
    private var fd: Int32
    private(set) var size = 0
    private var hash = XXH64()

    init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        temporaryPath = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        fd = open(temporaryPath, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw MBDataError(.storage, "cannot create: \(String(cString: strerror(errno)))", source: temporaryPath)
        }
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporaryPath)
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MBDataError(.storage, "write failed: \(String(cString: strerror(errno)))", source: temporaryPath)
                }
                offset += n
            }
            hash.update(raw)
        }
        size += bytes.count
    }

    /// The xxh64 of everything written, as `xxh64:…`.
    var digest: String { hash.hexDigest }

    /// fsync, rename into place, fsync the directory.
    func commit() throws {
        guard fsync(fd) == 0 else { throw MBDataError(.storage, "fsync failed: \(String(cString: strerror(errno)))", source: temporaryPath) }
        close(fd)
        fd = -1
        guard rename(temporaryPath, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw MBDataError(.storage, "cannot rename into place: \(message)", source: path)
        }
        Self.syncDirectory(of: path)
    }

    static func syncDirectory(of path: String) {
        let directory = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        let file = try AtomicFile(path: path)
        try file.write(bytes)
        try file.commit()
    }
}
