import Foundation
import MBData
import MBDataTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@testable import MBDataServer

/// The daemon's threads do not grow with its streams: every stream's batches are prepared on
/// the one process-wide blocking executor, and a stream waiting for a batch holds no thread.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: "/proc/self/task"), "needs /proc/self/task (Linux)"))
struct ThreadCountTests {
    static let streams = 64

    /// Threads of this process now.
    static func threadCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
    }

    /// 1,024 samples of 4 KiB of seeded random bytes (incompressible): batches of 16 are
    /// 64 KiB, so a stream of 64 batches is far more than the socket buffers hold and every
    /// stream's production waits for its consumer.
    static func blobDataset(_ directory: TemporaryDirectory) async throws -> String {
        let (samples, width) = (1_024, 4_096)
        var state: UInt64 = 0x5EED
        var data = [UInt8](repeating: 0, count: samples * width)
        for index in data.indices {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var mixed = (state ^ (state >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            data[index] = UInt8(truncatingIfNeeded: mixed >> 56)
        }
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(samples), \(width)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let npy = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8) + data
        let source = directory.path("x.npy")
        try Data(npy).write(to: URL(fileURLWithPath: source))
        let path = directory.path("blobs.mbdb")
        let schema = try Schema(json: Data(#"{"name": "blobs", "fields": [{"name": "x", "dtype": "uint8", "shape": [4096]}]}"#.utf8))
        _ = try await Dataset.ingest(into: path, SourceSpec(paths: ["x=" + source]), schema: schema)
        return path
    }

    #if canImport(Glibc)
        /// Opens a batch stream on a blocking socket with a small receive buffer and returns
        /// it once the response head and the start of the body arrived; the caller then
        /// leaves it unread.
        static func openStream(port: Int, target: String) throws -> Int32 {
            struct SocketFailure: Error, CustomStringConvertible { let description: String }
            // A daemon that never answers fails the test instead of hanging it.
            let socket = try connectLoopback(port: port, receiveBuffer: 4_096)
            let request = Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
            guard send(socket, request, request.count, 0) == request.count else { throw SocketFailure(description: "send: errno \(errno)") }
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1_024)
            while true {
                let count = recv(socket, &chunk, chunk.count, 0)
                guard count > 0 else { throw SocketFailure(description: "recv \(count): errno \(errno) after \(received.count) bytes") }
                received += chunk[0..<count]
                if let end = received.firstRange(of: Array("\r\n\r\n".utf8)), received.count > end.upperBound { break }
            }
            guard received.starts(with: Array("HTTP/1.1 200".utf8)) else {
                throw SocketFailure(description: String(decoding: received.prefix(200), as: UTF8.self))
            }
            return socket
        }

        @Test func sixtyFourOpenStreamsAddNoThreadPerStream() async throws {
            let directory = try TemporaryDirectory()
            let path = try await Self.blobDataset(directory)
            var configuration = ServeConfiguration(datasets: [("blobs", path)], state: directory.path("state.sqlite"))
            configuration.maxStreams = Self.streams
            // As `mbdata serve` sets it: every stream may use the whole executor.
            configuration.prefetch.workers = BlockingExecutor.threadCount
            let (before, during) = try await withServer(configuration) { url in
                let port = try #require(URL(string: url)?.port)
                let before = try Self.threadCount()
                let sockets = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Int32], any Error>) in
                    // Blocking sockets on a thread of the test's own, never on the executor the
                    // daemon prepares the batches on.
                    Thread {
                        continuation.resume(
                            with: Result {
                                try (0..<Self.streams).map { stream in
                                    try Self.openStream(
                                        port: port, target: "/v1/datasets/blobs/batches?batch_size=16&seed=7&epoch=0&group=g\(stream)")
                                }
                            })
                    }.start()
                }
                defer { for socket in sockets { close(socket) } }
                return (before, try Self.threadCount())
            }
            // The constant: the cooperative pool's threads, which may not all have started
            // before the streams (one per core), and 4 for threads that come and go whatever
            // the load — GRDB's writer and the state database's queue on a dispatch thread, the
            // test's socket thread while it exits.
            let constant = ProcessInfo.processInfo.activeProcessorCount + 4
            #expect(
                during <= before + constant,
                "\(during) threads with \(Self.streams) streams open, \(before) before them (executor: \(BlockingExecutor.threadCount) threads)")
        }
    #endif
}
