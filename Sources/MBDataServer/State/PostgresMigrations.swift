import Logging
import MBData
import PostgresNIO

/// The versioned schema of ``PostgresStateStore``, in the schema `mbdata`. Every daemon of a
/// cluster runs ``migrate(_:logger:)`` when it first touches the database; the migrations
/// run in one transaction that holds a transaction-level advisory lock, so daemons starting
/// together migrate once, one after the other, and a failed migration leaves nothing behind.
/// A migration, once released, never changes: a new version appends one.
enum PostgresMigrations {
    /// The advisory lock every migrating daemon takes (`pg_advisory_xact_lock`): "mbdata\0\0" as a big-endian integer.
    static let lockKey: Int64 = 0x6d62_6461_7461_0000

    /// The statements of each version, in order: version N is `versions[N - 1]`.
    static let versions: [[String]] = [
        [
            """
            CREATE TABLE mbdata.cursors (
                id text PRIMARY KEY,
                state jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE mbdata.pinned_plans (
                key text PRIMARY KEY,
                dataset_version bigint NOT NULL)
            """,
            // Lease ids stay below 2^53, so clients that read JSON numbers as doubles keep
            // them exact; they start at a random point, as the embedded store's do.
            "CREATE SEQUENCE mbdata.lease_ids AS bigint MINVALUE 1 MAXVALUE 9007199254740991",
            "SELECT setval('mbdata.lease_ids', 1 + floor(random() * 4503599627370496)::bigint)",
            """
            CREATE TABLE mbdata.leases (
                id bigint PRIMARY KEY DEFAULT nextval('mbdata.lease_ids'),
                cursor text NOT NULL REFERENCES mbdata.cursors (id) ON DELETE CASCADE,
                epoch bigint NOT NULL,
                batch bigint NOT NULL,
                expires_at timestamptz NOT NULL,
                UNIQUE (cursor, epoch, batch))
            """,
            """
            CREATE TABLE mbdata.stream_claims (
                cursor text PRIMARY KEY,
                holder text NOT NULL,
                expires_at timestamptz NOT NULL)
            """,
        ],
        // Inference outputs (PostgresStateStore+Outputs): the registry of output tables,
        // each inference job's expected rows, and the batches committed, each with the lease
        // that committed it. The output tables themselves are made when a job first opens.
        [
            """
            CREATE TABLE mbdata.outputs (
                dataset text NOT NULL,
                output text NOT NULL,
                schema text NOT NULL,
                table_name text NOT NULL UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (dataset, output))
            """,
            """
            CREATE TABLE mbdata.output_jobs (
                cursor text PRIMARY KEY REFERENCES mbdata.cursors (id) ON DELETE CASCADE,
                dataset text NOT NULL,
                output text NOT NULL,
                expected_rows bigint NOT NULL,
                FOREIGN KEY (dataset, output) REFERENCES mbdata.outputs (dataset, output) ON DELETE CASCADE)
            """,
            """
            CREATE TABLE mbdata.output_batches (
                cursor text NOT NULL REFERENCES mbdata.output_jobs (cursor) ON DELETE CASCADE,
                batch bigint NOT NULL,
                lease bigint NOT NULL UNIQUE,
                rows bigint NOT NULL,
                committed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (cursor, batch))
            """,
        ],
    ]

    /// Brings the database to the newest version; returns the versions it applied.
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
        try await connection.query("CREATE SCHEMA IF NOT EXISTS mbdata", logger: logger)
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS mbdata.schema_migrations (
                version bigint PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        var current = 0
        for try await version in try await connection.query("SELECT COALESCE(max(version), 0) FROM mbdata.schema_migrations", logger: logger)
            .decode(Int.self)
        {
            current = version
        }
        guard current <= versions.count else {
            throw MBDataError(
                .storage, "the state database has schema version \(current); this daemon knows versions up to \(versions.count): upgrade it")
        }
        var applied: [Int] = []
        for (index, statements) in versions.enumerated() where index + 1 > current {
            for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            try await connection.query("INSERT INTO mbdata.schema_migrations (version) VALUES (\(index + 1))", logger: logger)
            applied.append(index + 1)
        }
        return applied
    }
}
