import Foundation
import MBDataTestSupport
import Testing

/// Every public declaration of the library modules carries a `///` doc comment (what
/// `make docs` renders); a declaration only the package's own modules need is `package`.
@Suite struct DocumentationCoverageTests {
    /// `file:line: declaration` for each public declaration in `folder` whose nearest
    /// preceding line, attributes and blank lines aside, is not a doc comment.
    static func undocumented(in folder: URL) throws -> [String] {
        // A line that declares something public: attributes, then `public` or `open`, then
        // anything but `extension` or `import`.
        let declaration = try NSRegularExpression(
            pattern: #"^\s*(?:@[\w.]+(?:\([^)]*\))?\s+)*(?:public|open)\s+(?!extension\b|import\b)"#)
        var found: [String] = []
        let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" } ?? []
        for file in files.sorted(by: { $0.path < $1.path }) {
            let lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
            for (index, line) in lines.enumerated()
            where declaration.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil {
                let previous = lines[..<index].last { text in
                    let trimmed = text.trimmingCharacters(in: .whitespaces)
                    return !trimmed.isEmpty && !trimmed.hasPrefix("@")
                }?.trimmingCharacters(in: .whitespaces) ?? ""
                if !previous.hasPrefix("///") && !previous.hasSuffix("*/") {
                    found.append("\(file.lastPathComponent):\(index + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        return found
    }

    @Test(arguments: ["MBData", "MBDataTraining", "MBDataWire", "MBDataServer", "MBDataClient", "MBDataOrigin"])
    func everyPublicDeclarationIsDocumented(module: String) throws {
        let folder = packageRoot.appendingPathComponent("Sources/" + module)
        #expect(FileManager.default.fileExists(atPath: folder.path))
        #expect(try Self.undocumented(in: folder) == [])
    }

    @Test func findsAnUndocumentedDeclaration() throws {
        let directory = try TemporaryDirectory()
        let source = """
            /// Documented.
            public struct Documented {
                /// Documented, under an attribute.
                @discardableResult
                public func run() -> Int { 0 }
                public var bare: Int { 0 }
            }
            public extension Documented {}
            """
        try directory.write("Sample.swift", source)
        #expect(try Self.undocumented(in: directory.url) == ["Sample.swift:6: public var bare: Int { 0 }"])
    }
}
