/// The input formats `mbdata ingest` reads.
public enum SourceFormat: String, CaseIterable, Codable, Sendable {
    /// JSON Lines: one object per line holding every field.
    case jsonl
    /// CSV with a header row naming the fields.
    case csv
    /// `FIELD=path.npy` pairs: one NumPy array per field.
    case npy
    /// A NumPy `.npz` archive whose member names are field names.
    case npz
    /// A folder of class folders of image files.
    case imagefolder
    /// A flat binary of uint16 or uint32 tokens cut into windows.
    case tokens

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
