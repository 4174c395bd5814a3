import MBData
import MBDataWire

/// What a batch, lease or cursor request reads: one served dataset
/// (`/v1/datasets/{name}/…`) or a mixture of served datasets (`/v1/mixture/…?mix=…`).
enum ServedSource: Sendable {
    case dataset(DatasetCatalog.Served)
    case mixture(ServedMixture)

    /// The cursor document's `dataset` and the metrics' label: the dataset's name, or
    /// ``ServedMixture/name``.
    var name: String {
        switch self {
        case .dataset(let served): served.name
        case .mixture(let mixture): mixture.name
        }
    }
}

/// A mixture request's sources, each a served dataset, with their weights and epoch size.
struct ServedMixture: Sendable {
    /// The sources and weights the request named.
    var query: MixtureQuery
    /// The served dataset of each source, in `_source` order.
    var datasets: [DatasetCatalog.Served]

    /// `mix:` and the sources' names in order (`mix:web,code,books`): a cursor's `dataset`.
    /// Dataset names hold no `:`, so it is never a dataset's name. Weights and the epoch size
    /// are not part of it: a request that changes them finds the cursor of the mixture it
    /// changes, which refuses it (`409 cursor_mismatch`).
    var name: String { Self.name(of: query.sources.map(\.name)) }

    /// The name of a mixture of sources called `names`.
    static func name(of names: [String]) -> String { "mix:" + names.joined(separator: ",") }

    /// The components `MixtureBatchPlan.resolve` takes.
    var components: [MixtureComponent] {
        zip(query.sources, datasets).map { MixtureComponent(dataset: $1.dataset, name: $0.name, weight: $0.weight) }
    }
}
