#if os(Linux)
import Glibc
import MBData
import Testing

@testable import MBDataClient

/// The Swift client's timeouts, against a listener that accepts connections (the kernel
/// does, from its backlog) and never answers.
@Suite struct TransportTimeoutTests {
    @Test(.timeLimit(.minutes(1))) func aDaemonThatNeverAnswersIsUnavailableAfterTheReadTimeout() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let source = try ServeSource(
            url: "http://127.0.0.1:\(listener.port)", dataset: "digits", reconnects: 0,
            timeouts: .init(connect: .seconds(2), read: .milliseconds(300)))
        let error = await #expect(throws: MBDataError.self) {
            _ = try await source.prepare(RemoteLoaderTests.configuration(), resumingFrom: nil)
        }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        let cause = error?.cause.map { String(describing: $0) } ?? "none"
        #expect(cause.contains("readTimeout"), "the cause: \(cause)")
        try await source.shutdown()
    }
}

/// A TCP socket listening on a free 127.0.0.1 port that never accepts; closed, it leaves a
/// port that nothing listens on.
struct SilentListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(listener, address, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, address, &length) == 0
            }
        }
        try #require(listener >= 0 && bound, "socket: errno \(errno)")
        descriptor = listener
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(descriptor) }
}
#endif
