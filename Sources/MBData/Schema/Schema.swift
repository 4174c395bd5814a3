import Foundation

/// The shape and types of every sample of a dataset, read from a JSON document.
///
/// ```json
/// {"name": "digits", "key": "id",
///  "fields": [{"name": "id", "dtype": "int64"},
///             {"name": "image", "dtype": "uint8", "shape": [8, 8]},
///             {"name": "label", "dtype": "int64"}]}
/// ```
/// The format is specified by `schemas/sample-schema.schema.json`. A dataset keeps the
/// schema it was created with (``Dataset/schema()``); every ingest must match it.
public struct Schema: Hashable, Codable, Sendable {
    /// The dataset's name (non-empty); informational.
    public var name: String
    /// The field that identifies a sample; re-ingesting a sample with a known key adds nothing.
    public var key: String?
    /// The fields of every sample, in column and tensor order (at least one).
    public var fields: [Field]
    /// Free text for people; not used by mbdata.
    public var description: String?

    /// A schema built in code, checked as a schema document is.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidSchema` when a field name is
    ///   invalid or repeated, a shape breaks the format's rules, a value would need more than
    ///   ``RecordLimits/largestMaxRecordBytes``, or `key` names no scalar integer, string or bytes field.
    public init(name: String, key: String? = nil, fields: [Field], description: String? = nil) throws {
        self.name = name
        self.key = key
        self.fields = fields
        self.description = description
        try validate()
    }

    /// The field called `name` (case-sensitive), or nil.
    public func field(named name: String) -> Field? { fields.first { $0.name == name } }
    /// The position of the field called `name` in ``fields`` — and so in a stored sample's
    /// values (``StoredSample/values``) — or nil.
    public func index(of name: String) -> Int? { fields.firstIndex { $0.name == name } }
    /// The position of the ``key`` field, or nil when the schema has no key.
    public var keyIndex: Int? { key.flatMap(index(of:)) }

    /// Reads and validates a schema file.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.unreadableSource` when the file cannot
    ///   be read, `MBDataError.Code.invalidSchema` when it is not a valid schema document.
    public init(contentsOf path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw MBDataError(.unreadableSource, "cannot read schema file: \(error.localizedDescription)", source: path)
        }
        do {
            try self.init(json: data)
        } catch var error as MBDataError {
            error.source = error.source ?? path
            throw error
        }
    }

    /// Parses and validates a schema document (UTF-8 JSON; unknown properties are refused).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidSchema`.
    public init(json data: Data) throws {
        let root: ParsedJSON
        do {
            root = try ParsedJSON.parse([UInt8](data))
        } catch let error as MBDataError {
            throw MBDataError(.invalidSchema, "schema is not valid JSON: \(error.message)")
        }
        guard case .object(let members) = root else {
            throw MBDataError(.invalidSchema, "schema must be a JSON object, got \(root.kindDescription)")
        }
        try Self.rejectUnknown(keys: members.map(\.0), allowed: ["name", "key", "fields", "description"], in: "schema")
        guard case .string(let name)? = root["name"], !name.isEmpty else {
            throw MBDataError(.invalidSchema, "schema needs a non-empty string \"name\"")
        }
        let key = try Self.optionalString(root["key"], what: "\"key\"")
        let description = try Self.optionalString(root["description"], what: "\"description\"")
        guard case .array(let rawFields)? = root["fields"], !rawFields.isEmpty else {
            throw MBDataError(.invalidSchema, "schema needs a non-empty array \"fields\"")
        }
        var fields: [Field] = []
        for (position, raw) in rawFields.enumerated() {
            fields.append(try Self.parseField(raw, position: position))
        }
        try self.init(name: name, key: key, fields: fields, description: description)
    }

    private static func parseField(_ raw: ParsedJSON, position: Int) throws -> Field {
        let what = "fields[\(position)]"
        guard case .object(let members) = raw else {
            throw MBDataError(.invalidSchema, "\(what) must be an object with \"name\", \"dtype\" and optional \"shape\"")
        }
        try rejectUnknown(keys: members.map(\.0), allowed: ["name", "dtype", "shape", "description"], in: what)
        guard case .string(let name)? = raw["name"] else {
            throw MBDataError(.invalidSchema, "\(what) needs a string \"name\"")
        }
        guard case .string(let dtypeText)? = raw["dtype"] else {
            throw MBDataError(.invalidSchema, "\(what) needs a string \"dtype\"", field: name)
        }
        guard let dtype = DType(rawValue: dtypeText) else {
            let known = DType.allCases.map(\.rawValue).joined(separator: " ")
            throw MBDataError(.invalidSchema, "unknown dtype \"\(dtypeText)\"; expected one of: \(known)", field: name)
        }
        var shape: [Int?] = []
        switch raw["shape"] {
        case nil, .null?:
            break
        case .array(let dims)?:
            for dim in dims {
                switch dim {
                case .null: shape.append(nil)
                case .number(.integer(let n)) where n > 0 && n <= Int64(Int32.max): shape.append(Int(n))
                default:
                    throw MBDataError(
                        .invalidSchema, "shape dimension \(dim) is not a positive integer or null", field: name)
                }
            }
        case let other?:
            throw MBDataError(
                .invalidSchema, "\"shape\" must be an array of positive integers or null, got \(other.kindDescription)",
                field: name)
        }
        let description = try optionalString(raw["description"], what: "\"description\"")
        return Field(name: name, dtype: dtype, shape: shape, description: description)
    }

    private static func rejectUnknown(keys: [String], allowed: Set<String>, in what: String) throws {
        if let unknown = keys.filter({ !allowed.contains($0) }).sorted().first {
            throw MBDataError(
                .invalidSchema,
                "unknown property \"\(unknown)\" in \(what); expected only \(allowed.sorted().joined(separator: ", "))")
        }
        if let duplicate = Dictionary(grouping: keys, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw MBDataError(.invalidSchema, "property \"\(duplicate)\" appears twice in \(what)")
        }
    }

    private static func optionalString(_ value: ParsedJSON?, what: String) throws -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case let other?: throw MBDataError(.invalidSchema, "\(what) must be a string, got \(other.kindDescription)")
        }
    }

    /// Checks the rules a document cannot express by shape alone: valid, case-insensitively
    /// unique field names; `bytes` and `string` only as scalars; at most one variable
    /// dimension; a value size within ``RecordLimits/largestMaxRecordBytes``; a key that
    /// names a scalar integer, string or bytes field.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidSchema`, naming the field.
    public func validate() throws {
        var seen = Set<String>()
        for field in fields {
            guard Self.isValidFieldName(field.name) else {
                throw MBDataError(
                    .invalidSchema,
                    "field name must match ^[A-Za-z][A-Za-z0-9_]{0,63}$ (a leading underscore is reserved)",
                    field: field.name)
            }
            guard seen.insert(field.name.lowercased()).inserted else {
                throw MBDataError(.invalidSchema, "duplicate field name (names are case-insensitive in SQLite)", field: field.name)
            }
            if field.dtype.isVariableLength && !field.isScalar {
                throw MBDataError(
                    .invalidSchema, "\(field.dtype.rawValue) fields hold one value per sample; shape must be [] or omitted",
                    field: field.name)
            }
            if field.shape.filter({ $0 == nil }).count > 1 {
                throw MBDataError(
                    .invalidSchema, "at most one dimension may be variable (null), got \(field.shapeDescription)",
                    field: field.name)
            }
            if field.shape.contains(where: { ($0 ?? 1) <= 0 }) {
                throw MBDataError(.invalidSchema, "shape dimensions must be positive", field: field.name)
            }
            // Checked here so that element and byte counts computed from the shape later cannot overflow.
            let known = field.shape.compactMap { $0 }
            guard let elements = CheckedSize.product(known), let bytes = CheckedSize.product(elements, field.dtype.itemSize ?? 1),
                bytes <= RecordLimits.largestMaxRecordBytes
            else {
                throw MBDataError(
                    .invalidSchema,
                    "shape \(field.shapeDescription) of \(field.dtype.rawValue) needs more than \(RecordLimits.largestMaxRecordBytes >> 20) MiB per value, the most one record may hold",
                    field: field.name)
            }
        }
        if let key {
            guard let field = field(named: key) else {
                throw MBDataError(.invalidSchema, "key \"\(key)\" is not one of the fields")
            }
            guard field.isScalar, field.dtype.isInteger || field.dtype.isVariableLength else {
                throw MBDataError(
                    .invalidSchema, "a key must be a scalar integer, string or bytes field, not \(field.typeDescription)",
                    field: key)
            }
        }
    }

    static func isValidFieldName(_ name: String) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 64, first.isASCII, first.properties.isAlphabetic else {
            return false
        }
        return scalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }

    /// The canonical JSON text stored in the dataset's meta table: sorted keys, no
    /// whitespace, shapes only for non-scalars. Two schemas are equal exactly when their
    /// canonical texts are; plan fingerprints hash it.
    public func canonicalJSON() -> String {
        var object: [String: Any] = ["name": name]
        if let key { object["key"] = key }
        if let description { object["description"] = description }
        object["fields"] = fields.map { field -> [String: Any] in
            var f: [String: Any] = ["name": field.name, "dtype": field.dtype.rawValue]
            if !field.isScalar { f["shape"] = field.shape.map { $0.map { $0 as Any } ?? NSNull() } }
            if let description = field.description { f["description"] = description }
            return f
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
