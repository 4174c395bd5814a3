import ArgumentParser
import MBData
import MBDataServer

struct OutputsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Show each output of a dataset: fields, rows written per split, and its inference jobs' finished batches.")

    @Argument(help: "The dataset file; with --state, a dataset's name as the daemons serve it, or nothing for every dataset.")
    var dataset: String?

    @Flag(help: "Print JSON for scripts.")
    var json = false

    @Option(
        help: """
            A postgresql:// state URL: list the outputs the daemons of a cluster write there (serve --state), \
            with each job's rows written and expected; no file is read.
            """)
    var state: String?

    func validate() throws {
        guard dataset != nil || state != nil else { throw ValidationError("Name a dataset file, or a state database with --state.") }
    }

    func run() async throws {
        try await reportingErrors {
            if let state {
                let dataset = self.dataset
                let summaries = try await PostgresStateStore.withStore(url: state, logger: .stateCommand) {
                    try await $0.outputSummaries(dataset: dataset)
                }
                if json {
                    try printJSON(summaries)
                } else {
                    print(summaries.isEmpty ? "no outputs" : summaries.flatMap(\.renderedLines).joined(separator: "\n"))
                }
                return
            }
            guard let dataset else { return }
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
