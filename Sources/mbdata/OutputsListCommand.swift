import ArgumentParser
import MBData

struct OutputsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Show each output of a dataset: fields, rows written per split, and its inference jobs' finished batches.")

    @Argument(help: "The dataset file.")
    var dataset: String

    @Flag(help: "Print JSON for scripts.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let summaries = try await OutputSummary.all(in: Dataset(path: dataset))
            if json {
                try printJSON(summaries)
            } else if summaries.isEmpty {
                print("\(dataset): no outputs")
            } else {
                print(summaries.flatMap(\.renderedLines).joined(separator: "\n"))
            }
        }
    }
}
