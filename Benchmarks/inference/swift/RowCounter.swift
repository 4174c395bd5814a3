import Synchronization

/// Real (non-padding) rows seen by the model or trainer, shared by its concurrent calls.
final class RowCounter: Sendable {
    private let rows = Atomic<Int>(0)

    func add(_ count: Int) { rows.add(count, ordering: .relaxed) }

    var value: Int { rows.load(ordering: .relaxed) }
}
