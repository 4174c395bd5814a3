import Foundation

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

    /// The inputs at `paths`, read as `format` (or as their extensions say).
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
