import MBDataTraining

/// The query parameters that name a plan and a consumer's place in it
/// (schemas/serve-protocol.md §1), as a client writes them: `batch_size=64&seed=7…`.
public struct PlanQuery: Sendable, Equatable {
    /// The plan's parameters.
    public var plan: PlanParameters
    /// The consumer's rank of `plan.world`.
    public var rank: Int
    /// The consumer group.
    public var group: String

    /// The query of `plan` for `rank` in `group`.
    public init(plan: PlanParameters, rank: Int, group: String) {
        self.plan = plan
        self.rank = rank
        self.group = group
    }

    /// Name–value pairs, not yet percent-encoded; `split` only when the plan has one.
    public var items: [(name: String, value: String)] {
        var items = [
            ("batch_size", "\(plan.batchSize)"), ("seed", "\(plan.seed)"), ("world", "\(plan.world)"), ("rank", "\(rank)"),
            ("tail", plan.tail.rawValue), ("shuffle", "\(plan.shuffle)"), ("group", group),
        ]
        if let split = plan.split { items.append(("split", split)) }
        return items
    }
}
