import Foundation

#if canImport(Glibc)
    import Glibc

    /// A blocking TCP socket connected to 127.0.0.1:`port`, for tests that hold a connection
    /// byte by byte as no HTTP client would: a request sent in part, an answer left unread.
    /// A read waits `receiveTimeoutSeconds` at most (a daemon that never answers fails the
    /// test instead of hanging it); `receiveBuffer` shrinks the receive buffer before
    /// connecting. The caller closes the descriptor.
    public func connectLoopback(port: Int, receiveBuffer: Int32? = nil, receiveTimeoutSeconds: Int = 60) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw LoopbackSocketError(description: "socket: errno \(errno)") }
        if var size = receiveBuffer { setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let failure = errno
            close(socket)
            throw LoopbackSocketError(description: "connect to port \(port): errno \(failure)")
        }
        return socket
    }

    /// Opens a batch stream (`target`) on a blocking socket with a small receive buffer and
    /// returns it once the response head and the start of the body arrived; the caller then
    /// leaves it unread, and closes it.
    public func openUnreadStream(port: Int, target: String) throws -> Int32 {
        let socket = try connectLoopback(port: port, receiveBuffer: 4_096)
        let request = Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard retryingInterrupted({ send(socket, request, request.count, 0) }) == request.count else {
            throw LoopbackSocketError(description: "send: errno \(errno)")
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1_024)
        while true {
            let count = retryingInterrupted { recv(socket, &chunk, chunk.count, 0) }
            guard count > 0 else { throw LoopbackSocketError(description: "recv \(count): errno \(errno) after \(received.count) bytes") }
            received += chunk[0..<count]
            if let end = received.firstRange(of: Array("\r\n\r\n".utf8)), received.count > end.upperBound { break }
        }
        guard received.starts(with: Array("HTTP/1.1 200".utf8)) else {
            throw LoopbackSocketError(description: String(decoding: received.prefix(200), as: UTF8.self))
        }
        return socket
    }

    /// `call` again while it fails with `EINTR`: a signal to the test process (a child's
    /// `SIGCHLD`, as the kill tests' children exit) interrupts a blocking socket call on any
    /// thread.
    public func retryingInterrupted(_ call: () -> Int) -> Int {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
        }
    }

    /// A socket call of ``connectLoopback(port:receiveBuffer:receiveTimeoutSeconds:)`` that failed.
    public struct LoopbackSocketError: Error, CustomStringConvertible {
        /// The call and its errno.
        public var description: String
    }
#endif
