/// The input formats `mbdata ingest` reads.
public enum SourceFormat: String, CaseIterable, Codable, Sendable {
    /// JSON Lines; CSV with a header; NPY arrays (`FIELD=path.npy`, one per field); an NPZ
    /// archive; an image folder (`root/<class>/<file>`); a little-endian token binary cut into
    /// windows. The exact conventions: `samples/formats/README.md`.
    case jsonl, csv, npy, npz, imagefolder, tokens

    /// The format a path implies by its extension or by being a directory; nil when unknown.
    static func infer(from path: String, isDirectory: Bool) -> SourceFormat? {
        if isDirectory { return .imagefolder }
        if path.contains("=") && path.hasSuffix(".npy") { return .npy }
        switch path.split(separator: ".").last?.lowercased() {
        case "jsonl", "ndjson", "json": return .jsonl
        case "csv": return .csv
        case "npy": return .npy
        case "npz": return .npz
        case "bin", "tokens": return .tokens
        default: return nil
        }
    }
}

/// What a source yields: a sample, or a record that does not fit (which `IngestOptions.ErrorPolicy.skip`
/// may pass over; the source can go on after it).
enum SourceItem {
    case sample([SampleValue])
    case invalid(MBDataError)
}

/// A reader of one input that yields samples in the schema's field order.
///
/// `next()` throws only when the source cannot go on (unreadable, truncated, wrong header);
/// a bad record is returned as `.invalid` with its location.
protocol SampleSource: AnyObject {
    /// The source as the user named it, for messages and the ingest log.
    var name: String { get }
    var format: SourceFormat { get }
    /// Records the source holds, when known before reading.
    var expectedRecords: Int? { get }
    /// Bytes the source holds, when known before reading.
    var expectedBytes: Int? { get }
    var bytesRead: Int { get }
    func next() throws -> SourceItem?
    /// The content hash of everything read so far (`xxh64:…`).
    var contentHash: String { get }
    /// Things the user should know after the run (a dropped tail, say).
    var notes: [String] { get }
    /// Dataset metadata this source defines (the class list of an image folder).
    var metadata: [String: String] { get }
}

extension SampleSource {
    var notes: [String] { [] }
    var metadata: [String: String] { [:] }
}

/// How the ingest finds and reads its inputs.
public struct SourceSpec: Sendable, Hashable {
    /// Paths as given: a file, `-` for stdin, `FIELD=path.npy` pairs, a directory.
    public var paths: [String]
    /// Overrides the format implied by the paths.
    public var format: SourceFormat?
    /// Window length for token binaries.
    public var sequenceLength: Int?
    /// Bytes per token in token binaries: 2 (uint16, default) or 4 (uint32).
    public var tokenByteWidth: Int = 2

    /// Sources to ingest; the format of each path is inferred from its extension unless
    /// `format` is given.
    ///
    /// - Parameters:
    ///   - paths: Files, `-` for stdin, `FIELD=path.npy` pairs, or an image-folder directory.
    ///   - format: The format of every path, overriding the extensions.
    ///   - sequenceLength: Tokens per sample for token binaries (required for them), at most
    ///     ``RecordLimits/maxSequenceLength``.
    ///   - tokenByteWidth: 2 (uint16, default) or 4 (uint32) for token binaries.
    public init(paths: [String], format: SourceFormat? = nil, sequenceLength: Int? = nil, tokenByteWidth: Int = 2) {
        self.paths = paths
        self.format = format
        self.sequenceLength = sequenceLength
        self.tokenByteWidth = tokenByteWidth
    }

    /// Splits the paths into separate sources: NPY `FIELD=path` pairs form one source,
    /// every other path is its own.
    func sources() throws -> [SourceSpec] {
        let npyPairs = paths.filter { $0.contains("=") }
        let others = paths.filter { !$0.contains("=") }
        var result: [SourceSpec] = []
        if !npyPairs.isEmpty {
            var spec = self
            spec.paths = npyPairs
            spec.format = .npy
            result.append(spec)
        }
        for path in others {
            var spec = self
            spec.paths = [path]
            result.append(spec)
        }
        guard !result.isEmpty else {
            throw MBDataError(.invalidArgument, "no source given: name a file, `-` for stdin, FIELD=path.npy pairs or a folder")
        }
        return result
    }

    /// The resolved format of a single-source spec; fails when a path does not exist.
    func resolvedFormat() throws -> SourceFormat {
        var isDirectory: ObjCBool = false
        for raw in paths where raw != "-" {
            let path = raw.contains("=") ? String(raw.split(separator: "=", maxSplits: 1).last ?? "") : raw
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw MBDataError(.unreadableSource, "no such file or directory", source: path)
            }
        }
        if let format { return format }
        let path = paths[0]
        if path == "-" { return .jsonl }
        guard let format = SourceFormat.infer(from: path, isDirectory: isDirectory.boolValue) else {
            throw MBDataError(
                .invalidArgument,
                "cannot tell the format from the extension; name it (\(SourceFormat.allCases.map(\.rawValue).joined(separator: "|")))",
                source: path, parameter: "SourceSpec.format")
        }
        return format
    }

    /// Opens the reader of a single-source spec; no record may need more than `maxRecordBytes`.
    func open(schema: Schema, maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes) throws -> any SampleSource {
        switch try resolvedFormat() {
        case .jsonl: return try JSONLSource(path: paths[0], schema: schema, maxRecordBytes: maxRecordBytes)
        case .csv: return try CSVSource(path: paths[0], schema: schema, maxRecordBytes: maxRecordBytes)
        case .npy: return try NPYSource(pairs: paths, schema: schema, maxRecordBytes: maxRecordBytes)
        case .npz: return try NPYSource(npz: paths[0], schema: schema, maxRecordBytes: maxRecordBytes)
        case .imagefolder: return try ImageFolderSource(root: paths[0], schema: schema, maxRecordBytes: maxRecordBytes)
        case .tokens:
            return try TokenSource(
                path: paths[0], schema: schema, sequenceLength: sequenceLength, tokenByteWidth: tokenByteWidth,
                maxRecordBytes: maxRecordBytes)
        }
    }

    /// Checks the options a spec carries (the library's own check; the CLI names the flags).
    func validate() throws {
        if let sequenceLength { try Self.checkSequenceLength(sequenceLength) }
        guard tokenByteWidth == 2 || tokenByteWidth == 4 else {
            throw MBDataError(
                .invalidArgument, "tokens must be uint16 or uint32 (2 or 4 bytes per token), got \(tokenByteWidth) bytes",
                parameter: "SourceSpec.tokenByteWidth")
        }
    }

    static func checkSequenceLength(_ length: Int) throws {
        guard (1...RecordLimits.maxSequenceLength).contains(length) else {
            throw MBDataError(
                .invalidArgument, "the sequence length must be within 1...\(RecordLimits.maxSequenceLength) tokens, got \(length)",
                parameter: "SourceSpec.sequenceLength")
        }
    }

    /// A stable identity of the input (paths, sizes, modification times and options) used to
    /// recognise a re-run of the same ingest.
    func fingerprint() -> String? {
        var parts: [String] = [(format ?? (try? resolvedFormat()))?.rawValue ?? "?"]
        for raw in paths {
            let path = String(raw.split(separator: "=", maxSplits: 1).last ?? Substring(raw))
            guard path != "-" else { return nil }
            let url = URL(fileURLWithPath: path).standardizedFileURL
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path) else { return nil }
            let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            parts.append("\(raw.contains("=") ? raw.split(separator: "=")[0] + "=" : "")\(url.path):\(size):\(modified)")
        }
        if let sequenceLength { parts.append("seq=\(sequenceLength)") }
        parts.append("tokenbytes=\(tokenByteWidth)")
        return parts.joined(separator: "|")
    }
}

import Foundation
