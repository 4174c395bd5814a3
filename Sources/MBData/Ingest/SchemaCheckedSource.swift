/// A source mbdata did not build, with every sample checked against the schema: one whose
/// values do not fit (a missing field, a wrong storage class, a blob of the wrong length, an
/// integer outside its dtype) becomes an `.invalid` record naming the record and the field.
final class SchemaCheckedSource: SampleSource {
    private let inner: any SampleSource
    private let fields: [Field]
    private var record = 0

    init(_ inner: any SampleSource, schema: Schema) {
        self.inner = inner
        fields = schema.fields
    }

    var name: String { inner.name }
    var formatName: String { inner.formatName }
    var fingerprint: String? { inner.fingerprint }
    var expectedRecords: Int? { inner.expectedRecords }
    var expectedBytes: Int? { inner.expectedBytes }
    var bytesRead: Int { inner.bytesRead }
    var contentHash: String? { inner.contentHash }
    var notes: [String] { inner.notes }
    var metadata: [String: String] { inner.metadata }

    func next() throws -> SourceItem? {
        guard let item = try inner.next() else { return nil }
        record += 1
        guard case .sample(let values) = item else { return item }
        let location = "record \(record)"
        guard values.count == fields.count else {
            return .invalid(
                MBDataError(.schemaMismatch, "\(values.count) values for the schema's \(fields.count) fields", source: name, location: location))
        }
        for (field, value) in zip(fields, values) {
            if let problem = field.problem(withStored: value) {
                return .invalid(MBDataError(.schemaMismatch, problem, source: name, location: location, field: field.name))
            }
        }
        return item
    }
}
