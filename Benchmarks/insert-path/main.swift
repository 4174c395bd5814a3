// Compares the two ways of binding a sample row in the ingest hot path, on the same rows,
// in one run: GRDB `StatementArguments` (blob as Data) against SQLite's C API binding the
// blob straight from Swift memory (`SQLITE_STATIC`), as `SampleInserter` does.
//
//   swift run -c release mbdata-insert-bench [rows] [blob-bytes]
//
// Each way inserts into its own fresh temporary database (WAL, 64 KiB pages, one
// transaction per 10,000 rows) and the best of three rounds is reported.
import Foundation
import GRDB
import GRDBSQLite

let rows = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 200_000
let blobBytes = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2])! : 3072
let payload = (0..<rows).map { row in (0..<blobBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ row) } }

func withDatabase(_ body: (Database) throws -> Void) throws -> Double {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("insert-bench-\(UUID().uuidString).db").path
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = Configuration()
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA page_size = 65536") }
    let pool = try DatabasePool(path: path, configuration: configuration)
    return try pool.writeWithoutTransaction { db in
        try db.execute(sql: "CREATE TABLE samples (_id INTEGER PRIMARY KEY, _split TEXT NOT NULL, image BLOB NOT NULL, label INTEGER NOT NULL)")
        let start = Date()
        try body(db)
        return Date().timeIntervalSince(start)
    }
}

func inChunks(_ db: Database, _ insert: (Int) throws -> Void) throws {
    for chunk in stride(from: 0, to: rows, by: 10_000) {
        try db.inTransaction {
            for row in chunk..<min(chunk + 10_000, rows) { try insert(row) }
            return .commit
        }
    }
}

let sql = "INSERT INTO samples (_split, image, label) VALUES (?, ?, ?)"

func grdbArguments() throws -> Double {
    try withDatabase { db in
        let statement = try db.makeStatement(sql: sql)
        try inChunks(db) { row in
            statement.setUncheckedArguments(["train", Data(payload[row]), row])
            try statement.execute()
        }
    }
}

func rawBinding() throws -> Double {
    try withDatabase { db in
        let statement = try db.makeStatement(sql: sql)
        let handle = statement.sqliteStatement
        try inChunks(db) { row in
            sqlite3_reset(handle)
            sqlite3_bind_text(handle, 1, "train", -1, nil)
            payload[row].withUnsafeBytes { raw in
                sqlite3_bind_blob(handle, 2, raw.baseAddress, Int32(raw.count), nil)
                sqlite3_bind_int64(handle, 3, Int64(row))
                precondition(sqlite3_step(handle) == SQLITE_DONE)
            }
        }
    }
}

var best = ["GRDB StatementArguments": Double.infinity, "C API, SQLITE_STATIC": Double.infinity]
for _ in 0..<3 {
    best["GRDB StatementArguments"] = min(best["GRDB StatementArguments"]!, try grdbArguments())
    best["C API, SQLITE_STATIC"] = min(best["C API, SQLITE_STATIC"]!, try rawBinding())
}
print("rows: \(rows), blob: \(blobBytes) bytes, best of 3")
for (name, seconds) in best.sorted(by: { $0.key < $1.key }) {
    print(String(format: "%-26@ %8.0f rows/s  %7.1f MB/s", name as NSString, Double(rows) / seconds, Double(rows * blobBytes) / seconds / 1e6))
}
print(String(format: "C API / GRDB: %.2fx", best["GRDB StatementArguments"]! / best["C API, SQLITE_STATIC"]!))
