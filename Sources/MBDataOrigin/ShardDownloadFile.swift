import Foundation
import MBData
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A shard file being downloaded into the cache: written under a temporary name of its own
/// (a leftover is swept when the set is next opened), hashed as it is written, and renamed
/// into place by ``commit()`` only after the caller verified it.
package final class ShardDownloadFile: Sendable {
    /// The path the file takes once committed.
    package let path: String
    let temporaryPath: String
    private let state = Mutex<(descriptor: Int32, size: Int, hash: XXH64)>((-1, 0, XXH64()))
    private static let names = Atomic<Int>(0)

    /// The suffix of temporary names: files of the cache that end with it are not verified.
    static let temporaryMarker = ".download-"

    init(path: String) {
        self.path = path
        let number = Self.names.wrappingAdd(1, ordering: .relaxed).newValue
        let url = URL(fileURLWithPath: path)
        temporaryPath = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent)\(Self.temporaryMarker)\(getpid())-\(number)").path
    }

    deinit { discard() }

    /// Empties the temporary file, for a first or a repeated attempt.
    func restart() throws {
        try state.withLock { state in
            if state.descriptor >= 0 { close(state.descriptor) }
            state = (open(temporaryPath, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644), 0, XXH64())
            guard state.descriptor >= 0 else {
                throw MBDataError(.storage, "cannot create a cache file: \(String(cString: strerror(errno)))", source: temporaryPath)
            }
        }
    }

    /// Appends `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try state.withLock { state in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(state.descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MBDataError(.storage, "cannot write a cache file: \(String(cString: strerror(errno)))", source: temporaryPath)
                }
                offset += n
            }
            state.hash.update(bytes)
            state.size += bytes.count
        }
    }

    /// The xxh64 of the bytes written since the last ``restart()``.
    var digest: UInt64 { state.withLock { $0.hash.finalize() } }

    /// fsync, rename into place, fsync the directory.
    func commit() throws {
        try state.withLock { state in
            guard fsync(state.descriptor) == 0 else {
                throw MBDataError(.storage, "cannot fsync a cache file: \(String(cString: strerror(errno)))", source: temporaryPath)
            }
            close(state.descriptor)
            state.descriptor = -1
            guard rename(temporaryPath, path) == 0 else {
                throw MBDataError(.storage, "cannot rename a cache file into place: \(String(cString: strerror(errno)))", source: path)
            }
        }
        let directory = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// Closes and removes the temporary file unless it was committed.
    func discard() {
        state.withLock { state in
            guard state.descriptor >= 0 else { return }
            close(state.descriptor)
            state.descriptor = -1
            unlink(temporaryPath)
        }
    }
}
