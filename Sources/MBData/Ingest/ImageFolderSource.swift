import Foundation

/// An image folder `root/<class>/<file>`: classes sorted by name give the labels. Fills the
/// schema's `bytes` field with the file, its integer field with the class index and, if
/// present, its `string` field with the path relative to the root.
final class ImageFolderSource: SampleSource {
    let name: String
    let format = SourceFormat.imagefolder
    let expectedRecords: Int?
    let expectedBytes: Int?
    private(set) var bytesRead = 0
    private var hash = XXH64()
    private let files: [(relativePath: String, label: Int)]
    private let classes: [String]
    private let root: URL
    private var position = 0
    private let bytesIndex: Int
    private let labelIndex: Int
    private let pathIndex: Int?
    private let fieldCount: Int

    init(root path: String, schema: Schema) throws {
        name = path
        root = URL(fileURLWithPath: path)
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

        let manager = FileManager.default
        let visible = { (url: URL) in !url.lastPathComponent.hasPrefix(".") }
        let entries: [URL]
        do {
            entries = try manager.contentsOfDirectory(at: root, includingPropertiesForKeys: [.isDirectoryKey])
        } catch {
            throw MBDataError(.unreadableSource, "cannot list folder: \(error.localizedDescription)", source: path)
        }
        let classDirectories = entries.filter { visible($0) && ((try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) ?? false) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        guard !classDirectories.isEmpty else {
            throw MBDataError(.emptySource, "no class folders: expected root/<class>/<file>", source: path)
        }
        classes = classDirectories.map(\.lastPathComponent)
        var files: [(String, Int)] = []
        var total = 0
        for (label, directory) in classDirectories.enumerated() {
            let members = try manager.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey])
                .filter(visible).sorted { $0.lastPathComponent < $1.lastPathComponent }
            for file in members {
                let values = try file.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
                guard values.isRegularFile == true else { continue }
                total += values.fileSize ?? 0
                files.append(("\(directory.lastPathComponent)/\(file.lastPathComponent)", label))
            }
        }
        self.files = files
        expectedRecords = files.count
        expectedBytes = total
    }

    var contentHash: String { hash.hexDigest }
    var metadata: [String: String] {
        let data = try! JSONSerialization.data(withJSONObject: classes)
        return ["classes": String(decoding: data, as: UTF8.self)]
    }

    func next() throws -> SourceItem? {
        guard position < files.count else { return nil }
        let (relativePath, label) = files[position]
        position += 1
        let stream = try FileByteStream(path: root.appendingPathComponent(relativePath).path)
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
            if n == 0 { break }
            content.append(contentsOf: buffer[0..<n])
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
