import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An image folder `root/<class>/<file>`: classes sorted by name give the labels. Fills the
/// schema's `bytes` field with the file, its integer field with the class index and, if
/// present, its `string` field with the path relative to the root.
///
/// Symbolic links are followed (a linked class folder or image counts like the real one;
/// only one level below each class folder is read, so a link loop cannot trap the walk).
/// Every entry that is not ingested is reported in the notes, with why: hidden names,
/// names that are not UTF-8 (a class folder with such a name is left out with its files),
/// dangling links and link loops, unreadable files, fifos and other non-files, folders
/// inside a class folder and files directly in the root.
final class ImageFolderSource: SampleSource {
    let name: String
    let formatName = SourceFormat.imagefolder.rawValue
    let expectedRecords: Int?
    let expectedBytes: Int?
    private(set) var bytesRead = 0
    private var hash = XXH64()
    private let files: [(relativePath: String, label: Int, size: Int)]
    private let classes: [String]
    private let root: String
    private var position = 0
    private let bytesIndex: Int
    private let labelIndex: Int
    private let pathIndex: Int?
    private let fieldCount: Int
    private let maxRecordBytes: Int
    /// Entries left out, with why: `("cat/x.png", "a dangling symbolic link")`.
    let skipped: [(path: String, reason: String)]

    /// The most skipped entries named one by one in the notes; the rest are counted.
    static let maxListedSkips = 20

    init(root path: String, schema: Schema, maxRecordBytes: Int = RecordLimits.defaultMaxRecordBytes) throws {
        name = path
        root = path
        self.maxRecordBytes = maxRecordBytes
        let fields = schema.fields
        guard let bytesIndex = fields.firstIndex(where: { $0.dtype == .bytes }),
            let labelIndex = fields.firstIndex(where: { $0.dtype.isInteger && $0.isScalar })
        else {
            throw MBDataError(
                .schemaMismatch, "an image folder fills a bytes field (the file) and a scalar integer field (the class index); the schema lacks one",
                source: path)
        }
        let pathIndex = fields.firstIndex { $0.dtype == .string }
        if let extra = fields.indices.first(where: { ![bytesIndex, labelIndex, pathIndex].contains($0) }) {
            throw MBDataError(
                .schemaMismatch,
                "an image folder fills only a bytes field, an integer label and a string path; this field would have no value",
                source: path, field: fields[extra].name)
        }
        self.bytesIndex = bytesIndex
        self.labelIndex = labelIndex
        self.pathIndex = pathIndex
        fieldCount = fields.count

        var skipped: [(String, String)] = []
        var classDirectories: [String] = []
        for entry in try Self.list(path, source: path) {
            switch entry.kind {
            case .skip(let reason): skipped.append((entry.name, reason))
            case .directory: classDirectories.append(entry.name)
            case .file: skipped.append((entry.name, "a file directly in the root, outside any class folder"))
            }
        }
        classDirectories.sort()
        guard !classDirectories.isEmpty else {
            throw MBDataError(.emptySource, "no class folders: expected root/<class>/<file>", source: path)
        }
        classes = classDirectories
        var files: [(String, Int, Int)] = []
        var total = 0
        for (label, directory) in classDirectories.enumerated() {
            let members: [(name: String, kind: Kind)]
            do {
                members = try Self.list(path + "/" + directory, source: path).sorted { $0.name < $1.name }
            } catch let error as MBDataError {
                // The class keeps its label, so the others' labels do not move.
                skipped.append((directory, "a class folder that \(error.message)"))
                continue
            }
            for member in members {
                let relative = "\(directory)/\(member.name)"
                switch member.kind {
                case .skip(let reason): skipped.append((relative, reason))
                case .directory: skipped.append((relative, "a folder inside a class folder (only files directly in it are read)"))
                case .file(let size):
                    total += size
                    files.append((relative, label, size))
                }
            }
        }
        self.files = files
        self.skipped = skipped
        expectedRecords = files.count
        expectedBytes = total
    }

    private enum Kind {
        case file(size: Int)
        case directory
        case skip(String)
    }

    /// The entries of a folder as raw names (so a name that is not UTF-8 is seen, not
    /// dropped), classified after following symbolic links.
    private static func list(_ directory: String, source: String) throws -> [(name: String, kind: Kind)] {
        guard let handle = opendir(directory) else {
            throw MBDataError(.unreadableSource, "cannot be listed: \(String(cString: strerror(errno)))", source: directory)
        }
        defer { closedir(handle) }
        var result: [(String, Kind)] = []
        while let entry = readdir(handle) {
            let raw = withUnsafeBytes(of: &entry.pointee.d_name) { bytes in Array(bytes.prefix { $0 != 0 }) }
            if raw == [0x2E] || raw == [0x2E, 0x2E] { continue }
            guard let name = String(validating: raw, as: UTF8.self) else {
                let shown = String(decoding: raw, as: UTF8.self)
                let bytes = raw.map { String($0, radix: 16) }.joined(separator: " ")
                let what = Self.entryCount(ofFolder: Array(directory.utf8) + [0x2F] + raw).map { "a folder of \($0) entries, left out with them" } ?? "an entry"
                result.append((shown, .skip("the name is not valid UTF-8 (bytes \(bytes)): \(what); rename it")))
                continue
            }
            if name.hasPrefix(".") {
                result.append((name, .skip("a hidden name (starts with '.')")))
                continue
            }
            let full = directory + "/" + name
            var info = stat()
            guard stat(full, &info) == 0 else {
                let reason: String
                switch errno {
                case ELOOP: reason = "a symbolic link loop"
                case ENOENT: reason = "a dangling symbolic link"
                default: reason = "cannot be read: \(String(cString: strerror(errno)))"
                }
                result.append((name, .skip(reason)))
                continue
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                result.append((name, .directory))
            case S_IFREG:
                if access(full, R_OK) != 0 {
                    result.append((name, .skip("cannot be read: \(String(cString: strerror(errno)))")))
                } else {
                    result.append((name, .file(size: Int(info.st_size))))
                }
            default:
                result.append((name, .skip("not a regular file (a fifo, socket or device)")))
            }
        }
        return result
    }

    /// The number of entries in the folder at a raw path, or nil when it is not a folder.
    private static func entryCount(ofFolder path: [UInt8]) -> Int? {
        guard let handle = opendir(path.map { CChar(bitPattern: $0) } + [0]) else { return nil }
        defer { closedir(handle) }
        var count = 0
        while let entry = readdir(handle) {
            let raw = withUnsafeBytes(of: &entry.pointee.d_name) { bytes in Array(bytes.prefix { $0 != 0 }) }
            if raw != [0x2E] && raw != [0x2E, 0x2E] { count += 1 }
        }
        return count
    }

    var contentHash: String? { hash.hexDigest }
    var metadata: [String: String] {
        let data = try! JSONSerialization.data(withJSONObject: classes)
        return ["classes": String(decoding: data, as: UTF8.self)]
    }

    var notes: [String] {
        guard !skipped.isEmpty else { return [] }
        var notes = ["skipped \(skipped.count) entries that are not images of a class folder:"]
        for entry in skipped.prefix(Self.maxListedSkips) { notes.append("skipped \(entry.path): \(entry.reason)") }
        if skipped.count > Self.maxListedSkips { notes.append("… and \(skipped.count - Self.maxListedSkips) more skipped entries") }
        return notes
    }

    func next() throws -> SourceItem? {
        guard position < files.count else { return nil }
        let (relativePath, label, size) = files[position]
        position += 1
        guard size <= maxRecordBytes else {
            return .invalid(
                RecordLimits.exceeded("the \(size)-byte file", limit: maxRecordBytes).located(
                    source: name, location: relativePath, field: nil))
        }
        let stream = try FileByteStream(path: root + "/" + relativePath, hashing: false)
        var content: [UInt8] = []
        content.reserveCapacity(size)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
            if n == 0 { break }
            content.append(contentsOf: buffer[0..<n])
            if content.count > maxRecordBytes {
                return .invalid(
                    RecordLimits.exceeded("the file (grown while read)", limit: maxRecordBytes).located(source: name, location: relativePath))
            }
        }
        hash.update(Array(relativePath.utf8))
        hash.update(content)
        bytesRead += content.count
        var values = [SampleValue](repeating: .integer(0), count: fieldCount)
        values[bytesIndex] = .blob(content)
        values[labelIndex] = .integer(Int64(label))
        if let pathIndex { values[pathIndex] = .text(relativePath) }
        return .sample(values)
    }
}
