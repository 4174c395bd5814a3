import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The test servers a killed test process left running: each server's folder records the
/// process that started it (``Owner``), and every new server first stops and removes the
/// servers whose owner is gone.
extension PostgresServer {
    /// The prefix of every test server's folder under the temporary directory.
    static let folderPrefix = "mbdata-test-pg-"
    /// The file in a server's folder that names its owner.
    static let ownerFileName = "owner"

    /// The process that started a test server: its pid and, on Linux, its start time, so
    /// that another process given the same pid later is not taken for it.
    struct Owner: Equatable {
        var pid: pid_t
        var startTime: String?

        /// This process.
        static var current: Owner { Owner(pid: getpid(), startTime: startTime(of: getpid())) }

        /// The record's text: `pid` and the start time on one line.
        var record: String { "\(pid) \(startTime ?? "-")\n" }

        /// The owner a record names, or nil when it is not one.
        init?(record: String) {
            let fields = record.split(whereSeparator: \.isWhitespace)
            guard let first = fields.first, let pid = pid_t(first), pid > 0 else { return nil }
            self.init(pid: pid, startTime: fields.count > 1 && fields[1] != "-" ? String(fields[1]) : nil)
        }

        init(pid: pid_t, startTime: String?) {
            self.pid = pid
            self.startTime = startTime
        }

        /// Whether the process is still running: it exists, is no zombie, and started when
        /// the record says it did.
        var isAlive: Bool {
            guard kill(pid, 0) == 0 || errno == EPERM else { return false }
            guard let stat = Self.stat(of: pid) else { return startTime == nil }
            if stat.state == "Z" { return false }
            return startTime == nil || stat.startTime == startTime
        }

        /// Field 22 of `/proc/PID/stat`, the process's start time in clock ticks since boot.
        static func startTime(of pid: pid_t) -> String? { stat(of: pid)?.startTime }

        /// The state (field 3) and start time (field 22) of `/proc/PID/stat`, or nil where
        /// there is no such file. The fields are counted after the command's closing
        /// parenthesis, since the command may hold spaces.
        private static func stat(of pid: pid_t) -> (state: String, startTime: String)? {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = text.lastIndex(of: ")")
            else { return nil }
            let fields = text[text.index(after: close)...].split(whereSeparator: \.isWhitespace)
            // fields[0] is field 3 (the state); field 22 is fields[19].
            guard fields.count > 19 else { return nil }
            return (String(fields[0]), String(fields[19]))
        }
    }

    /// Records this process as the owner of the server folder `folder`.
    static func recordOwner(in folder: URL) throws {
        try Data(Owner.current.record.utf8).write(to: folder.appendingPathComponent(ownerFileName), options: .atomic)
    }

    /// The owner recorded in the server folder `folder`, or nil when none is (a folder
    /// being made, or one made before owners were recorded: neither is touched).
    static func owner(of folder: URL) -> Owner? {
        (try? String(contentsOf: folder.appendingPathComponent(ownerFileName), encoding: .utf8)).flatMap(Owner.init(record:))
    }

    /// Whether process `pid` runs (exists and is no zombie).
    package static func isRunning(_ pid: pid_t) -> Bool { Owner(pid: pid, startTime: nil).isAlive }

    /// The pid of the server running on the data directory `data`, from its
    /// `postmaster.pid`; nil when none runs.
    static func postmaster(data: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8),
            let line = text.split(separator: "\n").first, let pid = pid_t(line.trimmingCharacters(in: .whitespaces)),
            isRunning(pid)
        else { return nil }
        return pid
    }

    /// Stops (`pg_ctl -m immediate`) and removes every test server whose owning process is
    /// gone — a test run killed before it could stop its servers — and returns their folders.
    /// Servers of live processes, this one's and other test runs', are left alone.
    @discardableResult
    package static func removeAbandonedServers() async -> [String] {
        let temporary = FileManager.default.temporaryDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        var removed: [String] = []
        for name in names where name.hasPrefix(folderPrefix) {
            let folder = temporary.appendingPathComponent(name)
            guard let owner = owner(of: folder), !owner.isAlive else { continue }
            let data = folder.appendingPathComponent("data").path
            if let bin = binaries, postmaster(data: data) != nil {
                // Fails harmlessly when the server is not running (or another run stops it first).
                _ = try? await run(bin.appendingPathComponent("pg_ctl").path, ["-D", data, "-m", "immediate", "-w", "-t", "60", "stop"], asServer: true)
            }
            // A server that would not stop keeps its folder: removing its data under it helps nobody.
            guard postmaster(data: data) == nil else { continue }
            try? FileManager.default.removeItem(at: folder)
            removed.append(folder.path)
        }
        return removed
    }
}
