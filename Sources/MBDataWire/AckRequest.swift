/// The body of `POST /v1/cursors/{id}/acks` (schemas/serve-protocol.md §2): batches of one
/// epoch of a partition or replicate cursor, or the leases of a share group — never both.
public enum AckRequest: Codable, Sendable, Equatable {
    /// `{"epoch": E, "batches": [...]}`.
    case batches(epoch: Int, batches: [Int])
    /// `{"leases": [...]}`.
    case leases([UInt64])

    /// What a body of neither shape is told.
    public static let shapeDescription = #"an ack is {"epoch": E, "batches": [...]} or {"leases": [...]}"#

    private enum CodingKeys: String, CodingKey {
        case epoch, batches, leases
    }

    /// Decodes either shape; a body with both, or with neither, is `DecodingError.dataCorrupted`
    /// described by ``shapeDescription``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let epoch = try container.decodeIfPresent(Int.self, forKey: .epoch)
        let batches = try container.decodeIfPresent([Int].self, forKey: .batches)
        let leases = try container.decodeIfPresent([UInt64].self, forKey: .leases)
        switch (epoch, batches, leases) {
        case (nil, nil, let leases?): self = .leases(leases)
        case (let epoch?, let batches?, nil): self = .batches(epoch: epoch, batches: batches)
        default: throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: Self.shapeDescription))
        }
    }

    /// Encodes the body of its shape.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .batches(let epoch, let batches):
            try container.encode(epoch, forKey: .epoch)
            try container.encode(batches, forKey: .batches)
        case .leases(let leases):
            try container.encode(leases, forKey: .leases)
        }
    }
}
