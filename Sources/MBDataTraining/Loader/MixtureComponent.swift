/// A dataset a loader's mixture reads from: MBData's `Dataset` is one. This module knows
/// datasets only by this name, so that a configuration can hold them without the storage stack.
public protocol MixtureDataset: AnyObject, Sendable {
    /// The name a mixture gives the dataset unless told another (for a dataset file, its
    /// base name without the extension: `web` for `data/web.mbdb`).
    var mixtureName: String { get }
}

/// One dataset of a loader's mixture (``MultiBatchLoader/Configuration/mixture``): the
/// dataset, the name its rows carry and its weight.
///
/// ```swift
/// config.mixture = [.init(dataset: web, weight: 0.6), .init(dataset: code, weight: 0.25), .init(dataset: books, weight: 0.15)]
/// ```
public struct MixtureComponent: Sendable {
    /// The name batches list in their `_source` order and manifests and checkpoints record;
    /// unique within a mixture.
    public var name: String
    /// The component's share of each epoch.
    public var weight: MixtureWeight
    /// The dataset read live; nil names a dataset that another process serves (a remote
    /// source or a shard set resolves the name).
    public var dataset: (any MixtureDataset)?

    /// `dataset` with `weight`, named `name` or, by default, the dataset's ``MixtureDataset/mixtureName``.
    public init(dataset: any MixtureDataset, name: String? = nil, weight: MixtureWeight) {
        self.name = name ?? dataset.mixtureName
        self.weight = weight
        self.dataset = dataset
    }

    /// The dataset called `name` wherever the batches come from, with `weight`.
    public init(name: String, weight: MixtureWeight) {
        self.name = name
        self.weight = weight
        dataset = nil
    }
}
