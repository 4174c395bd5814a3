/// The ascending sample ids a plan pins, kept as runs of consecutive ids: a dataset
/// ingested in one go is one run, so a plan's memory does not grow with the dataset. Ids
/// that form many short runs (an interleaved split) are kept as a plain list instead, never
/// more than 8 bytes an id.
///
/// Element `i` is the id of the plan's sample index `i` (``EpochPlan/indices(epoch:batch:rank:)``).
public struct SampleIDs: RandomAccessCollection, Sendable, Hashable {
    fileprivate enum Storage: Sendable, Hashable {
        /// The first id of each run and the index where it begins (both ascending).
        case runs(starts: [Int64], offsets: [Int])
        case list([Int64])
    }

    private let storage: Storage
    /// Ids held.
    public let endIndex: Int
    /// Always 0.
    public var startIndex: Int { 0 }

    /// The ids of `ascending`, which must be strictly increasing (a precondition).
    public init(_ ascending: some Sequence<Int64>) {
        var builder = Builder()
        for id in ascending { builder.append(id) }
        self = builder.finish()
    }

    fileprivate init(storage: Storage, count: Int) {
        self.storage = storage
        endIndex = count
    }

    /// The id at `position`, in `0..<count`: O(log runs).
    public subscript(position: Int) -> Int64 {
        precondition(position >= 0 && position < endIndex, "sample index \(position) outside 0..<\(endIndex)")
        switch storage {
        case .list(let ids):
            return ids[position]
        case .runs(let starts, let offsets):
            var low = 0
            var high = offsets.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if offsets[middle] <= position { low = middle } else { high = middle - 1 }
            }
            return starts[low] + Int64(position - offsets[low])
        }
    }

    /// Runs of consecutive ids (1 for a dataset ingested in one go); `count` when the ids are
    /// kept as a list.
    public var runCount: Int {
        switch storage {
        case .list(let ids): ids.count
        case .runs(let starts, _): starts.count
        }
    }

    /// Calls `body` with the ids in order, in chunks of at most 4096 (for hashing them
    /// without materialising them).
    func forEachChunk(_ body: (UnsafeBufferPointer<Int64>) -> Void) {
        switch storage {
        case .list(let ids):
            ids.withUnsafeBufferPointer(body)
        case .runs(let starts, let offsets):
            withUnsafeTemporaryAllocation(of: Int64.self, capacity: 4096) { chunk in
                for (run, start) in starts.enumerated() {
                    let length = (run + 1 < offsets.count ? offsets[run + 1] : endIndex) - offsets[run]
                    var done = 0
                    while done < length {
                        let take = Swift.min(4096, length - done)
                        for i in 0..<take { chunk[i] = start + Int64(done + i) }
                        body(UnsafeBufferPointer(rebasing: chunk[0..<take]))
                        done += take
                    }
                }
            }
        }
    }

    /// Collects ids in ascending order, one run at a time.
    struct Builder {
        private var starts: [Int64] = []
        private var offsets: [Int] = []
        private var count = 0
        private var next: Int64?

        /// Appends `id`, greater than every id appended before (a precondition).
        mutating func append(_ id: Int64) {
            if id == next {
                count += 1
                next = id + 1
                return
            }
            precondition(next.map { id > $0 - 1 } ?? true, "sample ids must ascend: \(id) after \((next ?? 1) - 1)")
            starts.append(id)
            offsets.append(count)
            count += 1
            next = id + 1
        }

        /// Appends `length` consecutive ids from `start`.
        mutating func append(run start: Int64, length: Int) {
            guard length > 0 else { return }
            append(start)
            count += length - 1
            next = start + Int64(length)
        }

        /// The ids: as runs, or as a list when runs would take more memory.
        func finish() -> SampleIDs {
            guard starts.count * 2 > count else { return SampleIDs(storage: .runs(starts: starts, offsets: offsets), count: count) }
            var ids: [Int64] = []
            ids.reserveCapacity(count)
            for (run, start) in starts.enumerated() {
                let length = (run + 1 < offsets.count ? offsets[run + 1] : count) - offsets[run]
                ids.append(contentsOf: start..<start + Int64(length))
            }
            return SampleIDs(storage: .list(ids), count: count)
        }
    }
}
