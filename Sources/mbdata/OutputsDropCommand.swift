import ArgumentParser
import MBData

struct OutputsDropCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop",
        abstract: "Remove an output: its table, its inference jobs and their progress.")

    @Argument(help: "The dataset file.")
    var dataset: String

    @Option(help: "The output to remove.")
    var name: String

    func run() async throws {
        try await reportingErrors {
            let store = try Dataset(path: dataset)
            let rows = try await store.output(name).rows
            try await store.dropOutput(name)
            printError("\(dataset): output \(name) dropped (\(rows) rows)")
        }
    }
}
