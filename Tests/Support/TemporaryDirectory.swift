import Foundation

/// A fresh folder under the system temporary directory, for one test: every Swift test
/// target uses this one helper. It is removed by `remove()` or, at the latest, when the
/// last reference goes; close what is open inside it first (a `Dataset`, a server's state
/// database), because SQLite must not lose a file it still has open.
public final class TemporaryDirectory: Sendable {
    public let url: URL

    /// `label` (the test's name by default) becomes part of the folder's name, so a folder
    /// left behind by a crashed run says which test made it.
    public init(_ label: String = #function) throws {
        let name = label.filter { $0.isLetter || $0.isNumber }.prefix(40)
        url = FileManager.default.temporaryDirectory.appendingPathComponent("mbdata-test-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { remove() }

    /// Deletes the folder and everything in it (again is harmless).
    public func remove() { try? FileManager.default.removeItem(at: url) }

    /// The path of `name` inside the folder.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// The URL of `name` inside the folder.
    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Writes `text` to `name` (creating folders on the way) and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        try write(name, Data(text.utf8))
    }

    /// Writes `data` to `name` (creating folders on the way) and returns its path.
    @discardableResult
    public func write(_ name: String, _ data: Data) throws -> String {
        let target = file(name)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: target)
        return target.path
    }

    /// Writes `bytes` to `name` and returns its path.
    @discardableResult
    public func write(_ name: String, bytes: [UInt8]) throws -> String { try write(name, Data(bytes)) }
}

/// The package root, for reading `samples/`.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The path of a file under `samples/`.
public func samplePath(_ relative: String) -> String { packageRoot.appendingPathComponent("samples/" + relative).path }
