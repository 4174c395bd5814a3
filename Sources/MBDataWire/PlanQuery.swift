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
    /// How the plan packs a variable-length field into rows; nil for unpacked batches.
    public var packing: PackingSpec?
    /// The mixture the plan draws from (`mix=…`, protocol 1.2); nil for one dataset.
    public var mixture: MixtureQuery?

    /// The query of `plan` for `rank` in `group`, packed by `packing` or drawn from `mixture`
    /// when given.
    public init(plan: PlanParameters, rank: Int, group: String, packing: PackingSpec? = nil, mixture: MixtureQuery? = nil) {
        self.plan = plan
        self.rank = rank
        self.group = group
        self.packing = packing
        self.mixture = mixture
    }

    /// The query parameter naming the packed field and row length: `pack=tokens:2048`.
    public static let packName = "pack"
    /// The query parameter of the packing window in samples.
    public static let packWindowName = "pack_window"
    /// The query parameter of the overlong policy (`split` or `drop`).
    public static let packOverlongName = "pack_overlong"

    /// Name–value pairs, not yet percent-encoded; `split` only when the plan has one, the
    /// `pack` parameters only when it is packed, `mix` and `epoch_size` only for a mixture.
    public var items: [(name: String, value: String)] {
        var items = [
            ("batch_size", "\(plan.batchSize)"), ("seed", "\(plan.seed)"), ("world", "\(plan.world)"), ("rank", "\(rank)"),
            ("tail", plan.tail.rawValue), ("shuffle", "\(plan.shuffle)"), ("group", group),
        ]
        if let split = plan.split { items.append(("split", split)) }
        if let packing {
            items += [
                (Self.packName, "\(packing.field):\(packing.rowLength)"), (Self.packWindowName, "\(packing.packer.window)"),
                (Self.packOverlongName, packing.packer.overlong.rawValue),
            ]
        }
        if let mixture { items += mixture.items }
        return items
    }
}
