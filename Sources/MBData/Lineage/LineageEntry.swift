/// One sample's place in one batch of a plan: which dataset and sample, and where in the
/// batch — what `mbdata explain` prints, in both directions (a step's samples, a sample's
/// steps).
public struct LineageEntry: Sendable, Hashable, Codable {
    /// The name of the dataset the sample comes from (a mixture's source).
    public var dataset: String
    /// The sample's `_id` in that dataset.
    public var id: Int64
    /// The sample's key (the schema's key field, as text); nil without a key field.
    public var key: String?
    /// A mixture's source index (the row's `_source` value); nil for a plan over one dataset.
    public var source: Int?
    /// A mixture's pass over the source the draw belongs to (0 for the first showing of its
    /// samples, 1 for the first repeat, …); nil for a plan over one dataset.
    public var pass: Int?
    /// The epoch.
    public var epoch: Int
    /// The global batch: the step within the epoch.
    public var step: Int
    /// The rank whose slice of the global batch holds the row.
    public var rank: Int
    /// The row within the rank's batch.
    public var row: Int
    /// The sample's position in the epoch's order (a mixture's: in the mixture's epoch).
    public var position: Int
    /// A packed row's segment holding the sample (1…k, the `segment_ids` value); nil unpacked.
    public var segment: Int?
    /// The segment's first token within the sample (0, or a multiple of the row length for
    /// the later pieces of a split sample); nil unpacked.
    public var offset: Int?
    /// Tokens in the segment; nil unpacked.
    public var length: Int?
    /// The segment's first column in the row; nil unpacked.
    public var column: Int?

    /// An entry from its fields; the packing layout only for packed rows.
    public init(
        dataset: String, id: Int64, key: String? = nil, source: Int? = nil, pass: Int? = nil, epoch: Int, step: Int, rank: Int, row: Int, position: Int, segment: Int? = nil,
        offset: Int? = nil, length: Int? = nil, column: Int? = nil
    ) {
        self.dataset = dataset
        self.id = id
        self.key = key
        self.source = source
        self.pass = pass
        self.epoch = epoch
        self.step = step
        self.rank = rank
        self.row = row
        self.position = position
        self.segment = segment
        self.offset = offset
        self.length = length
        self.column = column
    }
}
