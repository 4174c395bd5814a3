import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc

    /// A child process started with `posix_spawn`: stdin, stdout and stderr from files, no
    /// other descriptor of this process (`closefrom(3)` in the child), its exit reaped by a
    /// thread of its own.
    ///
    /// Not Foundation's `Process`: its `run()` lists this process's open descriptors in
    /// `/proc/self/fd` to close them in the child, and it crashed there (a bad pointer in
    /// `memcpy`, 1,358 descriptors open) while the suite's parallel tests opened and closed
    /// sockets. A `posix_spawn` with `closefrom` reads nothing of this process's descriptors.
    public final class SpawnedProcess: Sendable {
        /// How a child ended: its exit status, or the signal that ended it.
        public struct Termination: Sendable, Equatable {
            /// The exit status, or the signal's number when `signaled`.
            public var status: Int32
            /// Whether a signal ended the process.
            public var signaled: Bool
        }

        /// The child's process id.
        public let pid: pid_t
        private let ended = Mutex<Termination?>(nil)
        private let exits: AsyncStream<Void>

        /// Starts `executable` with `arguments` in `directory` (this process's when nil),
        /// with this process's environment; stdin from `input`, stdout appended to `output`,
        /// stderr to `errors` (the same file as stdout when nil).
        ///
        /// - Throws: `SpawnError` when the child cannot be started.
        public init(
            _ executable: String, _ arguments: [String], directory: String? = nil, input: String = "/dev/null", output: String = "/dev/null",
            errors: String? = nil
        ) throws {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            if let errors {
                posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            } else {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
            guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else {
                throw SpawnError(description: "cannot start \(executable): no posix_spawn_file_actions_addclosefrom_np (glibc 2.34+)")
            }
            if let directory {
                guard let changeDirectory = Self.addChangeDirectory, changeDirectory(&actions, directory) == 0 else {
                    throw SpawnError(description: "cannot start \(executable) in \(directory): no posix_spawn_file_actions_addchdir_np (glibc 2.29+)")
                }
            }
            // Signals as a fresh process has them: none blocked, every one at its default (this
            // process ignores SIGPIPE, and an ignored signal stays ignored across exec).
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            var allSignals = sigset_t()
            sigfillset(&allSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            posix_spawnattr_setsigdefault(&attributes, &allSignals)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            var pid: pid_t = 0
            let argv = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { for argument in argv { free(argument) } }
            let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
            guard spawned == 0 else { throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(spawned)))") }
            self.pid = pid
            let (exits, exited) = AsyncStream.makeStream(of: Void.self)
            self.exits = exits
            Thread.detachNewThread { [self] in
                var status: Int32 = 0
                while waitpid(self.pid, &status, 0) == -1 && errno == EINTR {}
                // WIFSIGNALED, WTERMSIG and WEXITSTATUS, which Swift's Glibc does not import.
                let signal = status & 0x7f
                let termination =
                    signal != 0 && signal != 0x7f
                    ? Termination(status: signal, signaled: true) : Termination(status: (status >> 8) & 0xff, signaled: false)
                ended.withLock { $0 = termination }
                exited.finish()
            }
        }

        /// Whether the child has not been reaped yet.
        public var isRunning: Bool { ended.withLock { $0 == nil } }

        /// How the child ended; nil while it runs.
        public var termination: Termination? { ended.withLock { $0 } }

        /// Waits for the child to end.
        public func exited() async -> Termination {
            for await _ in exits {}
            return ended.withLock { $0 } ?? Termination(status: -1, signaled: false)
        }

        /// Blocks until the child ends (for a caller that cannot await).
        public func waitUntilExit() {
            while isRunning { usleep(5_000) }
        }

        /// Sends `signal` to the child while it runs.
        public func send(_ signal: Int32) {
            if isRunning { kill(pid, signal) }
        }

        /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+) and
        /// `posix_spawn_file_actions_addchdir_np` (2.29+), which Swift's Glibc module does not
        /// declare: found at run time.
        private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
            guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
        }()

        private static let addChangeDirectory: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32)? = {
            guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self)
        }()
    }

    /// A child that could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        /// What could not be started, and why.
        public var description: String
    }
#endif
