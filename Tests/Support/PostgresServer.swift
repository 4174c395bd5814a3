import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL server of its own for one test: a data directory in a temporary folder, the
/// server on a free 127.0.0.1 port (and a socket in that folder), trust authentication for
/// the superuser `postgres`, `fsync` off. As root it runs as the `postgres` user, which
/// PostgreSQL requires; otherwise as the current user.
///
/// `initdb` runs once per machine and PostgreSQL version: its result is kept as a template
/// under the temporary directory, and every server starts from a copy of it, so a server
/// costs a copy and a start.
public final class PostgresServer: Sendable {
    /// The newest `/usr/lib/postgresql/VERSION/bin` holding `initdb`, or nil when PostgreSQL
    /// is not installed (`make deps` installs it).
    public static let binaries: URL? = {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return versions.compactMap(Int.init).sorted().reversed().lazy
            .map { root.appendingPathComponent("\($0)/bin") }
            .first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("initdb").path) }
    }()

    /// Whether PostgreSQL's binaries are installed; tests that need a server are skipped
    /// when not, with this reason.
    public static let isAvailable = binaries != nil
    /// Why PostgreSQL tests were skipped.
    public static let unavailableReason = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make deps` installs it"

    /// The port the server listens on, on 127.0.0.1.
    public let port: Int
    private let directory: TemporaryDirectory
    private let bin: URL

    private var data: String { directory.path("data") }

    /// The server's folder: its data directory, socket, log and owner record.
    package var folder: String { directory.url.path }
    /// The pid of the running server process (the postmaster); nil when it is stopped.
    package var processID: pid_t? { Self.postmaster(data: data) }

    /// Starts a server; `stop()` it (or let ``with(_:)`` do it).
    public static func start() async throws -> PostgresServer {
        guard let bin = binaries else { throw PostgresServerError(message: "\(unavailableReason)") }
        await removeAbandonedServers()
        let template = try await Template.shared.path(bin: bin)
        // A short name (folderPrefix): the server's socket path inside it must stay below 108 bytes.
        let directory = try TemporaryDirectory("pg")
        try recordOwner(in: directory.url)
        try await run("/bin/cp", ["-a", template, directory.path("data")])
        try setOwner(directory.url.path)
        // A port another process takes between the check and the server's bind (another
        // test's server) fails the start with "could not bind"; the next port is tried then.
        var attempt = 1
        while true {
            let server = PostgresServer(directory: directory, bin: bin, port: try freePort())
            do {
                try await server.start()
                return server
            } catch let error as PostgresServerError where error.portWasTaken && attempt < 5 {
                attempt += 1
            }
        }
    }

    /// Runs `body` with a fresh server, stopped and removed afterwards whatever `body` does.
    public static func with<T: Sendable>(_ body: @Sendable (PostgresServer) async throws -> T) async throws -> T {
        let server = try await start()
        do {
            let result = try await body(server)
            try await server.stop()
            return result
        } catch {
            try? await server.stop()
            throw error
        }
    }

    private init(directory: TemporaryDirectory, bin: URL, port: Int) {
        self.directory = directory
        self.bin = bin
        self.port = port
    }

    /// Starts the server again after ``stop(immediately:)`` (a restart, for the tests that
    /// take the database away under a daemon), on the same port with the same data.
    public func start() async throws {
        let options = "-p \(port) -k \(directory.url.path) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        let log = directory.path("server.log")
        try? FileManager.default.removeItem(atPath: log)
        do {
            try await Self.run(tool("pg_ctl"), ["-D", data, "-l", log, "-w", "-t", "120", "-o", options, "start"], asServer: true)
        } catch var error as PostgresServerError {
            // pg_ctl only says "Examine the log output": the reason is in the server's log.
            let serverLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? "(no server log)"
            error.portWasTaken = serverLog.contains("could not bind") || serverLog.contains("already in use")
            error.message += "\nserver log:\n" + String(serverLog.suffix(2000))
            throw error
        }
    }

    /// Stops the server: `fast` (sessions are told the server shuts down, 57P01), or
    /// `immediate` (connections simply drop, as when the machine dies).
    public func stop(immediately: Bool = false) async throws {
        try await Self.run(tool("pg_ctl"), ["-D", data, "-m", immediately ? "immediate" : "fast", "-w", "-t", "120", "stop"], asServer: true)
    }

    /// Creates a fresh, empty database and returns its name (``url(database:)`` makes its URL).
    public func createDatabase() async throws -> String {
        let name = "test_" + UUID().uuidString.lowercased().filter { $0 != "-" }
        try await Self.run(tool("createdb"), ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", name])
        return name
    }

    /// The URL of `database` on this server.
    public func url(database: String) -> String { "postgresql://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable" }

    /// Runs `sql` in `database` with `psql` and returns what it prints (unaligned, no headers).
    @discardableResult
    public func psql(_ sql: String, database: String) async throws -> String {
        try await Self.run(tool("psql"), ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    private func tool(_ name: String) -> String { bin.appendingPathComponent(name).path }

    // MARK: - Processes

    /// Whether PostgreSQL's server tools must run as the `postgres` user: they refuse root.
    private static let runsAsPostgres = geteuid() == 0

    /// Runs `tool` and returns what it printed; throws with its output when it fails.
    ///
    /// ``SpawnedProcess`` rather than Foundation's `Process`: `pg_ctl start` leaves the
    /// server running with what it inherited, and `Process` learns of an exit through a
    /// socket the server would keep open, so it would wait for the server's end.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], asServer: Bool = false) async throws -> String {
        let command = asServer && runsAsPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--", tool] + arguments : [tool] + arguments
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("mbdata-postgres-tool-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        // /dev/null and one file, nothing else: `pg_ctl start` leaves a server running with
        // whatever it inherited, and every descriptor of this process without FD_CLOEXEC would
        // stay open in it — the listening and accepted sockets of the tests' daemons among
        // them, which then never close: a stopped daemon's port still accepts, its connections
        // never end, and a graceful shutdown waits on them for ever.
        let termination = try await SpawnedProcess(command[0], Array(command.dropFirst()), output: outputPath).exited()
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        guard termination == SpawnedProcess.Termination(status: 0, signaled: false) else {
            throw PostgresServerError(message: "\(command.joined(separator: " ")) ended with \(termination): \(output)")
        }
        return output
    }

    /// Gives the folder `path` to the `postgres` user when the tools run as it (what they
    /// make inside is theirs; `cp -a` keeps the template's owner).
    private static func setOwner(_ path: String) throws {
        guard runsAsPostgres else { return }
        try FileManager.default.setAttributes([.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"], ofItemAtPath: path)
    }

    /// A TCP port nothing listens on now, below the kernel's ephemeral range: a port from
    /// that range could be taken by any outgoing connection before the server binds it.
    private static func freePort() throws -> Int {
        let ephemeralStart = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32768
        let candidates = ephemeralStart > 12000 ? 10000..<ephemeralStart : 1024..<ephemeralStart
        for _ in 0..<100 {
            let port = Int.random(in: candidates)
            if try canBind(port) { return port }
        }
        throw PostgresServerError(message: "no free port below \(ephemeralStart) after 100 tries")
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    private static func canBind(_ port: Int) throws -> Bool {
        #if os(Linux)
            let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let socketFD = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard socketFD >= 0 else { throw PostgresServerError(message: "cannot open a socket to find a free port") }
        defer { close(socketFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) == 0 }
        }
    }

    /// The `initdb` result every server copies, made once per machine and version.
    private actor Template {
        static let shared = Template()
        private var made: String?

        /// The template's data directory, made now if it is missing: `initdb` into a
        /// temporary folder, then renamed into place, so a crashed run leaves no half of it.
        func path(bin: URL) async throws -> String {
            if let made { return made }
            let target = FileManager.default.temporaryDirectory.appendingPathComponent(
                "mbdata-postgres-template-\(bin.deletingLastPathComponent().lastPathComponent)").path
            if !FileManager.default.fileExists(atPath: target) {
                let scratch = try TemporaryDirectory("postgres-template")
                try setOwner(scratch.url.path)
                try await run(
                    bin.appendingPathComponent("initdb").path,
                    ["-D", scratch.path("data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"], asServer: true)
                try? FileManager.default.moveItem(atPath: scratch.path("data"), toPath: target)
            }
            made = target
            return target
        }
    }
}

/// A test server that could not be set up; the message has the tool's output.
public struct PostgresServerError: Error, CustomStringConvertible {
    /// What failed.
    public var message: String
    /// Whether the server could not start because its port was taken meanwhile.
    public var portWasTaken = false
    /// The message.
    public var description: String { message }
}
