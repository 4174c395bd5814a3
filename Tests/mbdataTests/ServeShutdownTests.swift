import Foundation
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc

    /// `mbdata serve` under SIGTERM with clients that never let it drain (issue 13): a stream
    /// whose reader stopped, a request whose body never comes, an idle keep-alive connection. The
    /// daemon exits 0 within `--shutdown-timeout` (its own timeouts, two minutes each here, never
    /// come into it), and the acks it answered before are in its state when it starts again.
    @Suite("serve: a bounded shutdown")
    struct ServeShutdownTests {
        static let bound = 3
        static let query = "batch_size=8&group=shutdown&split=train"

        @Test func sigtermEndsTheDaemonWithinTheShutdownTimeoutWhateverItsClientsDoWithSQLiteState() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try await Self.stopHeldDaemon(directory, state: directory.path("state.sqlite"))
        }

        @Test(.enabled(if: PostgresServer.isAvailable, Comment(rawValue: PostgresServer.unavailableReason)))
        func sigtermEndsTheDaemonWithinTheShutdownTimeoutWhateverItsClientsDoWithPostgreSQLState() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try await PostgresServer.with { server in
                try await Self.stopHeldDaemon(directory, state: server.url(database: try await server.createDatabase()))
            }
        }

        /// Acks three batches, holds the daemon with three connections, sends SIGTERM and times
        /// the exit; then a daemon on the same state shows the acks.
        static func stopHeldDaemon(_ directory: TemporaryDirectory, state: String) async throws {
            let datasets = [try await digitsDataset(directory), try await blobDataset(directory)]
            let (daemon, port) = try await serve(datasets, state: state, in: directory)
            let cursor = try await Self.cursor(port)
            let acked = try await RawHTTP.exchange(port, "POST", "/v1/cursors/\(cursor)/acks", body: #"{"epoch": 0, "batches": [0, 1, 2]}"#)
            #expect(acked.status == 200, "\(acked)")

            // A stream read by no one, far larger than the socket buffers: the daemon's writes stall,
            // and its close after the `draining` end waits for them up to --stall-timeout.
            let stalled = try await Self.unreadStream(port, "/v1/datasets/blobs/batches?batch_size=16&group=stalled")
            defer { close(stalled) }
            try await Self.waitUntilStalled(port, dataset: "blobs")
            // A request whose promised body never comes: in progress until --body-timeout (once the
            // daemon read its head, which SIGTERM may outrun).
            let bodiless = try RawHTTP(port: port)
            try bodiless.send(RawHTTP.request("POST", "/v1/cursors/\(cursor)/acks", headers: ["Content-Length: 64"], keepAlive: true))
            // An idle keep-alive connection after one answered request.
            let idle = try RawHTTP(port: port)
            try idle.send(RawHTTP.request("GET", "/healthz", keepAlive: true))
            #expect(try await RawHTTP.offPool { try idle.receive(atLeast: 12) }.hasPrefix("HTTP/1.1 200"))
            defer { for connection in [bodiless, idle] { connection.close() } }

            let signalled = ContinuousClock.now
            kill(daemon.pid, SIGTERM)
            let stopped = try await daemon.wait(timeout: 120)
            let took = signalled.duration(to: .now)
            #expect(stopped.status == 0 && !stopped.signaled, "\(stopped)")
            // Far below the daemon's own two-minute timeouts; the slack is for a machine busy with
            // the rest of the suite (20 s seen there, 3 s alone).
            #expect(took < .seconds(bound + 60), "SIGTERM took \(took) with --shutdown-timeout \(bound)")
            #expect(stopped.stderr.contains("passed --shutdown-timeout"), "the bound, not a client, ended the drain: \(stopped.stderr)")

            let (again, againPort) = try await serve(datasets, state: state, in: directory)
            let stored = try await RawHTTP.exchange(againPort, "GET", "/v1/cursors/\(cursor)")
            kill(again.pid, SIGTERM)
            let second = try await again.wait(timeout: 120)
            #expect(second.status == 0, "\(second)")
            let object = try CLI.jsonObject(stored.body)
            let epochs = try #require(object["epochs"] as? [[String: Any]], "\(stored)")
            #expect(epochs.first?["low_watermark"] as? Int == 3, "the acks answered before SIGTERM: \(stored)")
        }

        /// Starts `mbdata serve` on a free port with the daemon's own timeouts far beyond the bound.
        static func serve(_ datasets: [String], state: String, in directory: TemporaryDirectory) async throws -> (ChildProcess, Int) {
            let daemon = try ChildProcess(
                try CLI.binary(),
                ["serve"] + datasets + [
                    "--port", "0", "--state", state, "--shutdown-timeout", String(bound), "--header-timeout", "120",
                    "--body-timeout", "120", "--stall-timeout", "120",
                ], in: directory)
            guard try await daemon.waitForOutput(containing: "listening on http://"), let port = daemon.output.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
                daemon.kill()
                throw HarnessError("mbdata serve did not start: \(try await daemon.wait(timeout: 10))")
            }
            return (daemon, port)
        }

        /// A stream left unread, asked for again while the daemon answers it `503` (its state
        /// store did not answer in time), for two minutes at most.
        static func unreadStream(_ port: Int, _ target: String) async throws -> Int32 {
            let started = ContinuousClock.now
            while true {
                do {
                    return try await RawHTTP.offPool { try openUnreadStream(port: port, target: target) }
                } catch let refused as LoopbackSocketError where refused.description.hasPrefix("HTTP/1.1 503") && started.duration(to: .now) < .seconds(120) {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }

        /// Returns once the daemon's stream of `dataset` stopped sending: its count of served
        /// batches is the same 300 ms apart. Before, its first batches may all still fit the
        /// kernel's socket buffers, and a close would then have nothing to wait for.
        static func waitUntilStalled(_ port: Int, dataset: String) async throws {
            let started = ContinuousClock.now
            var last = -1.0
            while started.duration(to: .now) < .seconds(60) {
                let metrics = try await RawHTTP.exchange(port, "GET", "/metrics")
                let served = metrics.body.split(separator: "\n").filter { $0.hasPrefix("mbdata_batches_served_total{dataset=\"\(dataset)\"") }
                    .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
                if served > 0 && served == last { return }
                last = served
                try await Task.sleep(for: .milliseconds(300))
            }
            throw HarnessError("the stream of \(dataset) never stopped sending")
        }

        /// The test group's cursor, created by asking for it.
        static func cursor(_ port: Int) async throws -> String {
            let answer = try await RawHTTP.exchange(port, "GET", "/v1/datasets/digits/cursor?" + query)
            guard answer.status == 200, let cursor = try? CLI.jsonObject(answer.body)["cursor"] as? String else { throw HarnessError("cursor: \(answer)") }
            return cursor
        }
    }

    /// HTTP/1.1 over a plain blocking socket, byte by byte as a test needs it: requests sent
    /// whole or in part, answers read or left unread.
    final class RawHTTP: Sendable {
        private let socket: Int32

        /// An answer read to the connection's end.
        struct Answer: CustomStringConvertible {
            var status: Int
            var body: String
            var description: String { "\(status) \(body.prefix(300))" }
        }

        /// Connects to 127.0.0.1:`port`; `receiveBuffer` shrinks the socket's receive buffer first.
        init(port: Int, receiveBuffer: Int32? = nil) throws {
            socket = try connectLoopback(port: port, receiveBuffer: receiveBuffer, receiveTimeoutSeconds: 30)
        }

        /// A request's head (and `body`), closing the connection after the answer unless `keepAlive`.
        static func request(_ method: String, _ target: String, headers: [String] = [], body: String = "", keepAlive: Bool = false) -> String {
            var lines = ["\(method) \(target) HTTP/1.1", "Host: 127.0.0.1"] + headers
            if !keepAlive { lines.append("Connection: close") }
            if !body.isEmpty { lines += ["Content-Type: application/json", "Content-Length: \(body.utf8.count)"] }
            return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
        }

        /// One request on a fresh connection, its answer read to the end; sent again, for two
        /// minutes at most, while it is answered `503 state_unavailable` (nothing changed, retry
        /// later: on a loaded machine a PostgreSQL call can outlast the daemon's deadline for it).
        static func exchange(_ port: Int, _ method: String, _ target: String, body: String = "") async throws -> Answer {
            let started = ContinuousClock.now
            while true {
                let text = try await offPool {
                    let connection = try RawHTTP(port: port)
                    defer { connection.close() }
                    try connection.send(request(method, target, body: body))
                    return try connection.receive(atLeast: .max)
                }
                guard let status = Int(text.split(separator: " ").dropFirst().first ?? ""), let split = text.range(of: "\r\n\r\n") else {
                    throw HarnessError("not an HTTP answer: \(text.prefix(300))")
                }
                let answer = Answer(status: status, body: String(text[split.upperBound...]))
                guard status == 503, answer.body.contains("state_unavailable"), started.duration(to: .now) < .seconds(120) else { return answer }
                try await Task.sleep(for: .milliseconds(200))
            }
        }

        /// Runs blocking socket work on a thread of its own: a daemon slow to answer never holds
        /// a thread of the cooperative pool the other tests share.
        static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
            try await withCheckedThrowingContinuation { continuation in
                Thread { continuation.resume(with: Result { try work() }) }.start()
            }
        }

        func send(_ text: String) throws {
            let bytes = Array(text.utf8)
            var sent = 0
            while sent < bytes.count {
                let count = bytes[sent...].withUnsafeBytes { pending in
                    retryingInterrupted { Glibc.send(socket, pending.baseAddress, pending.count, Int32(MSG_NOSIGNAL)) }
                }
                guard count > 0 else { throw HarnessError("send: errno \(errno)") }
                sent += count
            }
        }

        /// Reads until `count` bytes came or the connection ended.
        func receive(atLeast count: Int) throws -> String {
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 16384)
            while received.count < count {
                let read = buffer.withUnsafeMutableBytes { space in retryingInterrupted { recv(socket, space.baseAddress, space.count, 0) } }
                guard read >= 0 else { throw HarnessError("recv: errno \(errno)") }
                if read == 0 { break }
                received += buffer[..<read]
            }
            return String(decoding: received, as: UTF8.self)
        }

        func close() { Glibc.close(socket) }
    }
#endif
