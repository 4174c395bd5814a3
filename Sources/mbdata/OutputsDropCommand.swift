import ArgumentParser
import MBData

struct OutputsDropCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop",
        abstract: "Remove an output: its table, its inference jobs and their progress.")

    @OptionGroup var target: OutputTarget

    func run() async throws {
        try await reportingErrors {
            let store = try Dataset(path: target.dataset)
            let rows = try await store.output(target.name).rows
            try await store.dropOutput(target.name)
            printError("\(target.dataset): output \(target.name) dropped (\(rows) rows)")
        }
    }
}
