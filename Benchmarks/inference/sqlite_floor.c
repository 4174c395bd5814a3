// The write floor of the inference benchmark: what committing the outputs into the dataset
// file costs SQLite alone, with nothing else in the loop (no sample is read, no model runs,
// no Python; the outputs are built before the clock starts). Any store that keeps the
// outputs in the dataset's SQLite file, as decision 14 does, pays at least this.
//
//   sqlite-floor DB TABLE BATCH CHECKPOINTS FIELD...
//
// TABLE (made by the driver: _id INTEGER PRIMARY KEY, a column per field) gets one row per
// sample of DB, in _id order, one transaction per BATCH rows, journal_mode=WAL and
// synchronous=NORMAL as mbdata's connections. FIELD is NAME=int64 (an integer column) or
// NAME=blob:BYTES (an array field, BYTES a row). CHECKPOINTS is `background` (mbdata's
// scheme, WALCheckpointer: a commit that leaves 1,024 or more frames in the WAL asks another
// connection on another thread for a PASSIVE checkpoint, one that leaves 4,096 runs it
// itself) or `sqlite` (SQLite's auto-checkpoint at its default 1,000 frames, as the peer).
//
// As every measured process of the benchmark: set-up, `READY {}`, wait for `go` on stdin,
// run, `RESULT {"rows": …, "batches": …, "seconds": …}`.
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { VARIANTS = 8, BACKGROUND_FRAMES = 1024, BLOCKING_FRAMES = 4096, MAX_FIELDS = 16 };

struct field {
    const char *name;
    int blob_bytes;  // 0: an int64 column
    unsigned char *values;  // VARIANTS × batch rows of blob_bytes
};

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "sqlite-floor: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void check(sqlite3 *db, int rc, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) fail(what, sqlite3_errmsg(db));
}

static void *allocate(void *old, size_t bytes) {
    void *memory = realloc(old, bytes);
    if (!memory) fail("out of memory", NULL);
    return memory;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// ------------------------------------------------------------------ background checkpoints

static const char *db_path;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int asked, stopping;

static void *checkpointer(void *unused) {
    (void)unused;
    sqlite3 *db;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) fail("checkpointer open", db_path);
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!asked && !stopping) pthread_cond_wait(&wake, &lock);
        if (!asked) break;
        asked = 0;
        pthread_mutex_unlock(&lock);
        sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    sqlite3_close(db);
    return NULL;
}

static int wal_hook(void *unused, sqlite3 *db, const char *name, int frames) {
    (void)unused;
    if (frames >= BLOCKING_FRAMES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (frames >= BACKGROUND_FRAMES) {
        pthread_mutex_lock(&lock);
        asked = 1;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
    }
    return SQLITE_OK;
}

// ------------------------------------------------------------------ set-up and the run

static int64_t *sample_ids(sqlite3 *db, int *count) {
    sqlite3_stmt *st;
    int capacity = 1 << 16, n = 0;
    int64_t *ids = allocate(NULL, sizeof *ids * (size_t)capacity);
    check(db, sqlite3_prepare_v2(db, "SELECT _id FROM samples ORDER BY _id", -1, &st, NULL), "select ids");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == capacity) ids = allocate(ids, sizeof *ids * (size_t)(capacity *= 2));
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    check(db, rc, "select ids");
    sqlite3_finalize(st);
    *count = n;
    return ids;
}

static void parse_field(const char *spec, int batch, struct field *f) {
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec) fail("expected NAME=int64 or NAME=blob:BYTES, got", spec);
    f->name = strndup(spec, (size_t)(eq - spec));
    if (strcmp(eq + 1, "int64") == 0) {
        f->blob_bytes = 0;
        f->values = NULL;
        return;
    }
    if (strncmp(eq + 1, "blob:", 5) != 0 || (f->blob_bytes = atoi(eq + 6)) <= 0) fail("bad field", spec);
    size_t total = (size_t)VARIANTS * (size_t)batch * (size_t)f->blob_bytes;
    f->values = allocate(NULL, total);
    for (size_t i = 0; i < total; i++) f->values[i] = (unsigned char)(i * 2654435761u >> 13);
}

int main(int argc, char **argv) {
    if (argc < 6) fail("usage: sqlite-floor DB TABLE BATCH background|sqlite NAME=int64|NAME=blob:BYTES ...", NULL);
    db_path = argv[1];
    const char *table = argv[2];
    int batch = atoi(argv[3]);
    int background = strcmp(argv[4], "background") == 0;
    if (batch <= 0) fail("BATCH must be a positive integer", argv[3]);
    if (!background && strcmp(argv[4], "sqlite") != 0) fail("CHECKPOINTS must be background or sqlite", argv[4]);
    int nfields = argc - 5;
    if (nfields > MAX_FIELDS) fail("too many fields", NULL);
    struct field fields[MAX_FIELDS];
    for (int i = 0; i < nfields; i++) parse_field(argv[5 + i], batch, &fields[i]);

    sqlite3 *db;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) fail("open", db_path);
    check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL), "pragmas");
    check(db, sqlite3_exec(db, background ? "PRAGMA wal_autocheckpoint=0" : "PRAGMA wal_autocheckpoint=1000", NULL, NULL, NULL),
          "wal_autocheckpoint");
    int rows;
    int64_t *ids = sample_ids(db, &rows);

    char sql[4096];
    int used = snprintf(sql, sizeof sql, "INSERT INTO %s (_id", table);
    for (int i = 0; i < nfields; i++) used += snprintf(sql + used, sizeof sql - (size_t)used, ", %s", fields[i].name);
    used += snprintf(sql + used, sizeof sql - (size_t)used, ") VALUES (?");
    for (int i = 0; i < nfields; i++) used += snprintf(sql + used, sizeof sql - (size_t)used, ", ?");
    snprintf(sql + used, sizeof sql - (size_t)used, ")");
    sqlite3_stmt *insert;
    check(db, sqlite3_prepare_v2(db, sql, -1, &insert, NULL), "prepare insert");

    pthread_t thread;
    if (background) {
        sqlite3_wal_hook(db, wal_hook, NULL);
        if (pthread_create(&thread, NULL, checkpointer, NULL) != 0) fail("pthread_create", NULL);
    }

    printf("READY {}\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2) != 0) fail("expected go on stdin", NULL);
    double start = now_s();
    int batches = 0;
    for (int row = 0; row < rows; batches++) {
        check(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
        int variant = batches % VARIANTS;
        for (int k = 0; k < batch && row < rows; k++, row++) {
            sqlite3_bind_int64(insert, 1, ids[row]);
            for (int i = 0; i < nfields; i++) {
                if (fields[i].blob_bytes == 0) {
                    sqlite3_bind_int64(insert, i + 2, (int64_t)(k % 10));
                } else {
                    size_t offset = ((size_t)variant * (size_t)batch + (size_t)k) * (size_t)fields[i].blob_bytes;
                    sqlite3_bind_blob(insert, i + 2, fields[i].values + offset, fields[i].blob_bytes, SQLITE_STATIC);
                }
            }
            check(db, sqlite3_step(insert), "insert");
            sqlite3_reset(insert);
        }
        check(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
    }
    double seconds = now_s() - start;
    printf("RESULT {\"rows\": %d, \"batches\": %d, \"seconds\": %.6f, \"checkpoints\": \"%s\"}\n", rows, batches, seconds,
           background ? "background" : "sqlite");
    fflush(stdout);

    if (background) {
        pthread_mutex_lock(&lock);
        stopping = 1;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        pthread_join(thread, NULL);
    }
    sqlite3_finalize(insert);
    sqlite3_close(db);
    free(ids);
    return 0;
}
