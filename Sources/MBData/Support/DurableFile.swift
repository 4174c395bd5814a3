import Foundation

/// Replaces a file whole and durably: the bytes go to a temporary file beside it, are
/// fsynced, renamed into place, and the directory is fsynced. A process killed at any point
/// (SIGKILL included) or a crash leaves the old file or the whole new one, never a part —
/// what a training state file holding weights and a loader checkpoint together needs.
public enum DurableFile {
    /// Writes `data` to `path`, replacing what was there, atomically and durably.
    public static func replace(_ path: String, with data: Data) throws {
        try AtomicFile.write([UInt8](data), to: path)
    }
}
