/// A served dataset as `GET /v1/datasets/{name}` describes it, and as each entry of
/// `GET /v1/datasets` lists it (without the schema): schemas/serve-protocol.md §6.
public struct DatasetDescription: Codable, Sendable, Equatable {
    /// The name the daemon serves it under.
    public var name: String
    /// The current dataset version.
    public var version: Int
    /// Samples in the current version.
    public var samples: Int
    /// Samples by split name.
    public var splits: [String: Int]
    /// The dataset's schema as its canonical JSON object; only for one dataset.
    public var schema: JSONValue?

    /// A description from its fields.
    public init(name: String, version: Int, samples: Int, splits: [String: Int], schema: JSONValue? = nil) {
        self.name = name
        self.version = version
        self.samples = samples
        self.splits = splits
        self.schema = schema
    }
}

/// The body of `GET /v1/datasets`: `{"datasets": [...]}`.
public struct DatasetList: Codable, Sendable, Equatable {
    /// Every served dataset, in the order the daemon was given them.
    public var datasets: [DatasetDescription]

    /// A list of descriptions.
    public init(datasets: [DatasetDescription]) { self.datasets = datasets }
}
