import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Dataset files on read-only storage: a read-only mount (an NFS export, a squashfs image, a
/// container volume). SQLite cannot open a WAL-mode file there as it opens one elsewhere — a
/// reader makes a `-shm` file beside it — so such a file is opened `immutable`: no locks, no
/// files beside it, its pages read as they are.
enum ReadOnlyStorage {
    /// Whether the file system holding `path` is mounted read-only.
    static func contains(_ path: String) -> Bool {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return false }
        return info.f_flag & UInt(ST_RDONLY) != 0
    }

    /// The name SQLite opens `path` by: the path itself, or on read-only storage a URI that
    /// marks the file immutable (percent-encoded, as SQLite's URI filenames are).
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
            "the dataset lies on read-only storage with a write-ahead log beside it (\(log), \(size) bytes) holding commits the file does not: open it once where it can be written (any mbdata command) so the log is folded into the file",
            source: path)
    }
}
