import Foundation
import MBData

#if canImport(Glibc)
    import Glibc
#endif

/// A real nginx serving `root` on a free 127.0.0.1 port: the HTTP origin of the tests. Its
/// configuration, pid file, logs and temporary files live in a temporary directory of its
/// own; it runs in the foreground as the current user (as root when the tests run as root).
/// `make deps` installs nginx.
public final class NginxServer: Sendable {
    /// The port nginx listens on.
    public let port: Int
    /// The directory served at `/`.
    public let root: String
    private let directory: TemporaryDirectory
    private let process: SpawnedProcess

    /// `http://127.0.0.1:PORT`.
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Where nginx is: `NGINX` in the environment, else the first of the usual places.
    static var binary: String? {
        if let path = ProcessInfo.processInfo.environment["NGINX"] { return path }
        return ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx", "/opt/homebrew/bin/nginx"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether nginx is installed (`make deps` installs it).
    public static var isInstalled: Bool { binary != nil }

    /// Starts nginx serving `root` and returns once it accepts connections.
    public init(root: String) async throws {
        guard let binary = Self.binary else {
            throw MBDataError(.unavailable, "nginx is not installed: run make deps (or set NGINX to its path)")
        }
        let directory = try TemporaryDirectory("nginx")
        try FileManager.default.createDirectory(atPath: directory.path("temp"), withIntermediateDirectories: true)
        var lastFailure = ""
        // A free port may be taken between choosing and binding it: try a few.
        for _ in 0..<5 {
            let port = try Self.freePort()
            let configuration = try directory.write("nginx.conf", Self.configuration(port: port, root: root, directory: directory))
            let process = try SpawnedProcess(binary, ["-p", directory.url.path, "-e", directory.path("error.log"), "-c", configuration])
            if await Self.waitUntilAccepting(port: port, while: process) {
                self.port = port
                self.root = root
                self.directory = directory
                self.process = process
                return
            }
            process.send(SIGTERM)
            process.waitUntilExit()
            lastFailure = (try? String(contentsOfFile: directory.path("error.log"), encoding: .utf8)) ?? ""
        }
        throw MBDataError(.unavailable, "nginx did not start: \(lastFailure.suffix(500))")
    }

    /// Stops nginx (SIGQUIT: a graceful shutdown) and waits for it to exit.
    public func stop() {
        process.send(SIGQUIT)
        process.waitUntilExit()
    }

    deinit { stop() }

    /// The request lines of the access log so far: `GET /set/shard-00000.mbshard HTTP/1.1 206`.
    public func requests() -> [String] {
        let log = (try? String(contentsOfFile: directory.path("access.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").map(String.init)
    }

    static func configuration(port: Int, root: String, directory: TemporaryDirectory) -> String {
        let temporary = directory.path("temp")
        return """
            daemon off;
            master_process on;
            worker_processes 1;
            \(getuid() == 0 ? "user root;" : "")
            pid \(directory.path("nginx.pid"));
            error_log \(directory.path("error.log")) warn;
            events { worker_connections 256; }
            http {
                log_format requests '$request $status';
                access_log \(directory.path("access.log")) requests;
                client_body_temp_path \(temporary)/body;
                proxy_temp_path \(temporary)/proxy;
                fastcgi_temp_path \(temporary)/fastcgi;
                uwsgi_temp_path \(temporary)/uwsgi;
                scgi_temp_path \(temporary)/scgi;
                default_type application/octet-stream;
                sendfile on;
                server {
                    listen 127.0.0.1:\(port);
                    root \(root);
                }
            }

            """
    }

    /// A 127.0.0.1 port the kernel had free a moment ago.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MBDataError(.unavailable, "cannot open a socket") }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw MBDataError(.unavailable, "cannot bind a socket to 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    /// Polls until a TCP connection to `port` succeeds (nginx binds before it forks its
    /// worker) or `process` exits; gives up after 20 seconds.
    static func waitUntilAccepting(port: Int, while process: SpawnedProcess) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        while process.isRunning, ContinuousClock.now < deadline {
            if canConnect(port: port) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
