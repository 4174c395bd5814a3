import Foundation
import NIOPosix
import Synchronization

/// The process's one pool of threads for blocking work — SQLite reads and writes, file I/O,
/// LZ4 and zlib — so that the thread count of a process does not grow with the number of
/// streams, loaders or calls.
///
/// The pool starts on its first use with the size given to ``configure(threads:)``, or one
/// thread per active core when nothing was configured. Size it once at process start, before
/// the first dataset, loader or server is opened (`mbdata serve --workers N` does): once the
/// pool runs its size is fixed, and a later ``configure(threads:)`` changes nothing and
/// returns `false`.
public enum BlockingExecutor {
    private enum State {
        case idle(threads: Int?)
        case running(NIOThreadPool)
    }

    private static let state = Mutex<State>(.idle(threads: nil))

    /// Sets the number of threads of the process-wide pool; call it once at process start.
    ///
    /// - Returns: `true` when the size took effect, `false` when the pool was already
    ///   running (its size then stays as it is).
    @discardableResult
    public static func configure(threads: Int) -> Bool {
        precondition(threads > 0, "the blocking executor needs at least one thread")
        return state.withLock { state in
            guard case .idle = state else { return false }
            state = .idle(threads: threads)
            return true
        }
    }

    /// The number of threads of the pool: the configured or the default size.
    public static var threadCount: Int {
        state.withLock { state in
            switch state {
            case .idle(let threads): threads ?? defaultThreadCount
            case .running(let pool): pool.numberOfThreads
            }
        }
    }

    private static var defaultThreadCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// The running pool, started on first use.
    static var pool: NIOThreadPool {
        state.withLock { state in
            switch state {
            case .running(let pool):
                return pool
            case .idle(let threads):
                let pool = NIOThreadPool(numberOfThreads: threads ?? defaultThreadCount)
                pool.start()
                state = .running(pool)
                return pool
            }
        }
    }

    /// Runs `job` on a thread of the pool and returns at once. The pool is never shut down,
    /// so every submitted job runs.
    package static func submit(_ job: @escaping @Sendable () -> Void) {
        pool.submit { _ in job() }
    }
}

/// Runs blocking work on the process-wide ``BlockingExecutor`` and awaits its result, keeping
/// file I/O, SQLite and compression off the cooperative pool. A task cancelled while its work
/// waits for a thread gets `CancellationError` and the work does not run; work that started
/// runs to its end.
package func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingExecutor.pool.runIfActive(body)
}
