import MBDataTraining

/// A pinned mixture as the `mixture` member of a cursor document spells it
/// (schemas/serve-protocol.md §2): `{"epoch_size", "sources": [{"name", "weight",
/// "dataset_version", "fingerprint"}]}`.
struct MixtureBody: Codable {
    struct Source: Codable {
        var name: String
        var weight: MixtureWeight
        var datasetVersion: Int
        var fingerprint: String

        private enum CodingKeys: String, CodingKey {
            case name, weight, fingerprint
            case datasetVersion = "dataset_version"
        }
    }

    var epochSize: Int
    var sources: [Source]

    private enum CodingKeys: String, CodingKey {
        case sources
        case epochSize = "epoch_size"
    }

    init(_ pinned: PinnedMixture) {
        epochSize = pinned.epochSize
        sources = pinned.sources.map { Source(name: $0.name, weight: $0.weight, datasetVersion: $0.datasetVersion, fingerprint: $0.fingerprint) }
    }

    var pinned: PinnedMixture {
        PinnedMixture(
            epochSize: epochSize,
            sources: sources.map { PinnedMixture.Source(name: $0.name, datasetVersion: $0.datasetVersion, fingerprint: $0.fingerprint, weight: $0.weight) })
    }
}
