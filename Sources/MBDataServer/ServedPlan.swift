import MBData

/// The plan a request resolves to: a dataset plan, the packing of its rows when the
/// request names one (`pack=FIELD:L`), or a mixture of datasets (`mix=…`). Cursors, pins,
/// headers and producers key on it.
struct ServedPlan: Sendable {
    /// What the plan draws from.
    enum Kind: Sendable {
        /// One dataset, unpacked.
        case dataset(DatasetPlan)
        /// One dataset packed into rows.
        case packed(PackedPlan)
        /// A mixture of datasets.
        case mixture(MixtureBatchPlan)
        /// A mixture of datasets packed into rows.
        case packedMixture(PackedMixturePlan)
    }

    let kind: Kind
    /// The cursor document's `batches_per_epoch`: the plan's, or for a packed plan the most
    /// any epoch can have (``PackedPlan/mostBatchesPerEpoch``, ``PackedMixturePlan/mostBatchesPerEpoch``,
    /// computed once).
    let batchesPerEpoch: Int

    /// An unpacked plan.
    init(_ plan: DatasetPlan) {
        kind = .dataset(plan)
        batchesPerEpoch = plan.plan.batchesPerEpoch
    }

    /// A packed plan.
    init(packed: PackedPlan) {
        kind = .packed(packed)
        batchesPerEpoch = packed.mostBatchesPerEpoch
    }

    /// A mixture plan.
    init(mixture: MixtureBatchPlan) {
        kind = .mixture(mixture)
        batchesPerEpoch = mixture.plan.batchesPerEpoch
    }

    /// A packed mixture plan.
    init(packedMixture: PackedMixturePlan) {
        kind = .packedMixture(packedMixture)
        batchesPerEpoch = packedMixture.mostBatchesPerEpoch
    }

    /// The packed plan over one dataset; nil for unpacked batches and mixtures.
    var packed: PackedPlan? {
        guard case .packed(let packed) = kind else { return nil }
        return packed
    }

    /// The mixture plan (a packed mixture's unpacked plan); nil for one dataset.
    var mixture: MixtureBatchPlan? {
        switch kind {
        case .mixture(let mixture): mixture
        case .packedMixture(let packed): packed.base
        case .dataset, .packed: nil
        }
    }

    /// The packed mixture plan; nil for one dataset and unpacked mixtures.
    var packedMixture: PackedMixturePlan? {
        guard case .packedMixture(let packed) = kind else { return nil }
        return packed
    }

    /// The fingerprint cursors and headers carry: the packed plan's covers its spec, the
    /// mixture plan's its sources' versions, contents and weights.
    var fingerprint: String {
        switch kind {
        case .dataset(let plan): plan.fingerprint
        case .packed(let packed): packed.fingerprint
        case .mixture(let mixture): mixture.fingerprint
        case .packedMixture(let packed): packed.fingerprint
        }
    }

    /// The dataset version the plan is pinned to; 1 for a mixture (its sources' versions are
    /// in ``MixtureBatchPlan/pinned``), as a loader's ``RemotePlan`` reports it.
    var datasetVersion: Int {
        switch kind {
        case .dataset(let plan): plan.datasetVersion
        case .packed(let packed): packed.base.datasetVersion
        case .mixture(let mixture): mixture.remotePlan.datasetVersion
        case .packedMixture(let packed): packed.base.remotePlan.datasetVersion
        }
    }

    /// The plan's parameters.
    var parameters: PlanParameters {
        switch kind {
        case .dataset(let plan): plan.parameters
        case .packed(let packed): packed.base.parameters
        case .mixture(let mixture): mixture.parameters
        case .packedMixture(let packed): packed.parameters
        }
    }

    /// The packing spec; nil for unpacked batches.
    var packing: PackingSpec? { packed?.spec ?? packedMixture?.spec }
}
