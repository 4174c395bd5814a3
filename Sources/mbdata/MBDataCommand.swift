import ArgumentParser
import MBData

@main
struct MBDataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbdata",
        abstract: "Ingest samples into SQLite datasets and prepare batches for training.",
        discussion: """
            Exit status: 0 success; 1 verify found problems; 64 bad command line; 65 bad input data \
            (schema, source record, dataset); 66 input not found or unreadable; 74 storage or I/O error.
            """,
        subcommands: [
            IngestCommand.self, ShardCommand.self, ServeCommand.self, OutputsCommand.self, InspectCommand.self, VerifyCommand.self,
            ExplainCommand.self,
        ]
    )
}
