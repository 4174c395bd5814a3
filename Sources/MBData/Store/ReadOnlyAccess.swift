import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Dataset files this process cannot write: on a read-only mount (an NFS export, a squashfs
/// image, a container volume), or without write permission on the file or its folder (a
/// shared dataset folder). SQLite cannot open a WAL-mode file there as it opens one elsewhere
/// — a reader makes a `-shm` file beside it — so such a file is opened `immutable`: no
/// locks, no files beside it, its pages read as they are.
enum ReadOnlyAccess {
    /// Whether this process cannot write the existing dataset file at `path`: its file system
    /// is mounted read-only, or the file or its folder is not writable to this user.
    static func forbidsWrites(_ path: String) -> Bool {
        mountedReadOnly(path) || access(path, W_OK) != 0 || access(folder(of: path), W_OK) != 0
    }

    /// Whether a new dataset file cannot be made at `path`: its folder exists and this
    /// process cannot write it (a read-only mount, or no permission).
    static func forbidsCreating(_ path: String) -> Bool {
        let folder = folder(of: path)
        return FileManager.default.fileExists(atPath: folder) && (mountedReadOnly(folder) || access(folder, W_OK) != 0)
    }

    /// Whether the file system holding `path` is mounted read-only.
    private static func mountedReadOnly(_ path: String) -> Bool {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return false }
        return info.f_flag & UInt(ST_RDONLY) != 0
    }

    private static func folder(of path: String) -> String {
        URL(fileURLWithPath: path).deletingLastPathComponent().path
    }

    /// The name SQLite opens `path` by: the path itself, or where it cannot be written a URI
    /// that marks the file immutable (percent-encoded, as SQLite's URI filenames are).
    static func filename(of path: String, readOnly: Bool) -> String {
        guard readOnly else { return path }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        return "file:" + (absolute.addingPercentEncoding(withAllowedCharacters: allowed) ?? absolute) + "?immutable=1"
    }

    /// Refuses a file with a write-ahead log beside it: the log holds commits the file does
    /// not, and an immutable open would not see them (a clean close folds the log in and
    /// removes it).
    static func refuseUnfoldedLog(of path: String) throws {
        let log = path + "-wal"
        guard let size = (try? FileManager.default.attributesOfItem(atPath: log))?[.size] as? Int, size > 0 else { return }
        throw MBDataError(
            .invalidDataset,
            "the dataset cannot be written here (read-only storage, or no write permission) and has a write-ahead log beside it (\(log), \(size) bytes) holding commits the file does not: open it once where it can be written (any mbdata command) so the log is folded into the file",
            source: path)
    }
}
