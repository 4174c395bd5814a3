/*
 * mbdata_client._framereader: local frames read and hashed on threads that never take
 * the GIL.
 *
 * A local batch (protocol 1.3) is one `preadv` of the frame from the daemon's shard file
 * and an xxh64 over its bytes: about 0.15 ms for a 790 KB CIFAR batch, most of what the
 * Python client spends on it. Python threads cannot take that off the trainer's thread:
 * whatever Python a reader thread runs between its GIL-free calls waits for the trainer
 * to let go of the GIL (Benchmarks/README.md, "What this machine allows"). Here the read
 * and the hash run on POSIX threads of this module; the trainer's thread only queues a
 * read (`FrameReader.start`) and later collects its result (`Read.wait`, which waits with
 * the GIL released when the read is not done yet).
 *
 * The module checks nothing about the frame itself: `Read.wait` returns the bytes read and
 * their xxh64, and `frames.FrameReceiver` checks the frame's structure and checksum as it
 * does for every frame. Buffers are held (the buffer protocol's export, which keeps numpy
 * arrays and bytearrays from moving) from `start` until the read is done and collected.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* SCHED_BATCH */
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---------------------------------------------------------------- xxh64, seed 0 */

static const uint64_t PRIME1 = 0x9E3779B185EBCA87ULL;
static const uint64_t PRIME2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t PRIME3 = 0x165667B19E3779F9ULL;
static const uint64_t PRIME4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t PRIME5 = 0x27D4EB2F165667C5ULL;

static inline uint64_t rotl64(uint64_t value, int bits) { return (value << bits) | (value >> (64 - bits)); }

static inline uint64_t read64(const unsigned char *p) {
    uint64_t value;
    memcpy(&value, p, 8); /* little-endian hosts only: the daemon's format is little-endian */
    return value;
}

static inline uint32_t read32(const unsigned char *p) {
    uint32_t value;
    memcpy(&value, p, 4);
    return value;
}

static inline uint64_t accumulate(uint64_t lane, uint64_t input) {
    lane += input * PRIME2;
    lane = rotl64(lane, 31);
    return lane * PRIME1;
}

static inline uint64_t merge(uint64_t hash, uint64_t lane) {
    hash ^= accumulate(0, lane);
    return hash * PRIME1 + PRIME4;
}

typedef struct {
    uint64_t lanes[4];
    uint64_t total;
    unsigned char pending[32];
    size_t pending_size;
} xxh64_state;

static void xxh64_reset(xxh64_state *state) {
    state->lanes[0] = PRIME1 + PRIME2;
    state->lanes[1] = PRIME2;
    state->lanes[2] = 0;
    state->lanes[3] = 0 - PRIME1;
    state->total = 0;
    state->pending_size = 0;
}

static void xxh64_stripe(xxh64_state *state, const unsigned char *p) {
    state->lanes[0] = accumulate(state->lanes[0], read64(p));
    state->lanes[1] = accumulate(state->lanes[1], read64(p + 8));
    state->lanes[2] = accumulate(state->lanes[2], read64(p + 16));
    state->lanes[3] = accumulate(state->lanes[3], read64(p + 24));
}

static void xxh64_update(xxh64_state *state, const unsigned char *p, size_t size) {
    state->total += size;
    if (state->pending_size) {
        size_t take = 32 - state->pending_size;
        if (take > size) take = size;
        memcpy(state->pending + state->pending_size, p, take);
        state->pending_size += take;
        p += take;
        size -= take;
        if (state->pending_size < 32) return;
        xxh64_stripe(state, state->pending);
        state->pending_size = 0;
    }
    for (; size >= 32; p += 32, size -= 32) xxh64_stripe(state, p);
    memcpy(state->pending, p, size);
    state->pending_size = size;
}

static uint64_t xxh64_digest(const xxh64_state *state) {
    uint64_t hash;
    if (state->total >= 32) {
        const uint64_t *lanes = state->lanes;
        hash = rotl64(lanes[0], 1) + rotl64(lanes[1], 7) + rotl64(lanes[2], 12) + rotl64(lanes[3], 18);
        for (int i = 0; i < 4; i++) hash = merge(hash, lanes[i]);
    } else {
        hash = PRIME5;
    }
    hash += state->total;
    const unsigned char *p = state->pending, *end = state->pending + state->pending_size;
    for (; p + 8 <= end; p += 8) hash = rotl64(hash ^ accumulate(0, read64(p)), 27) * PRIME1 + PRIME4;
    if (p + 4 <= end) {
        hash = rotl64(hash ^ ((uint64_t)read32(p) * PRIME1), 23) * PRIME2 + PRIME3;
        p += 4;
    }
    for (; p < end; p++) hash = rotl64(hash ^ ((uint64_t)*p * PRIME5), 11) * PRIME1;
    hash ^= hash >> 33;
    hash *= PRIME2;
    hash ^= hash >> 29;
    hash *= PRIME3;
    hash ^= hash >> 32;
    return hash;
}

/* ---------------------------------------------------------------- reads */

#define MAX_PARTS 4
#define MAX_THREADS 8

typedef struct job {
    int descriptor;
    off_t offset;
    int parts;
    Py_buffer views[MAX_PARTS];
    ssize_t got;      /* bytes read, or -errno */
    uint64_t digest;  /* of the bytes read */
    int done;
    struct job *next;
} job;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t queued;   /* a job was queued, or the reader stops */
    pthread_cond_t finished; /* a job is done */
    job *head, *tail;
    pthread_t threads[MAX_THREADS];
    int thread_count;
    int stopping;
    pid_t owner;
} FrameReader;

typedef struct {
    PyObject_HEAD
    FrameReader *reader;
    job *job;
    int collected;
} Read;

static PyTypeObject FrameReaderType;
static PyTypeObject ReadType;

static void run_job(job *work) {
    struct iovec vectors[MAX_PARTS];
    size_t wanted = 0;
    for (int i = 0; i < work->parts; i++) {
        vectors[i].iov_base = work->views[i].buf;
        vectors[i].iov_len = (size_t)work->views[i].len;
        wanted += vectors[i].iov_len;
    }
    size_t got = 0;
    int first = 0;
    while (got < wanted) {
        ssize_t count = preadv(work->descriptor, vectors + first, work->parts - first, work->offset + (off_t)got);
        if (count < 0) {
            if (errno == EINTR) continue;
            work->got = -errno;
            return;
        }
        if (count == 0) break; /* the file ends: a short read, which the caller refuses */
        got += (size_t)count;
        while (first < work->parts && (size_t)count >= vectors[first].iov_len) {
            count -= (ssize_t)vectors[first].iov_len;
            first++;
        }
        if (first < work->parts) {
            vectors[first].iov_base = (char *)vectors[first].iov_base + count;
            vectors[first].iov_len -= (size_t)count;
        }
    }
    work->got = (ssize_t)got;
    xxh64_state state;
    xxh64_reset(&state);
    size_t left = got;
    for (int i = 0; i < work->parts && left; i++) {
        size_t size = (size_t)work->views[i].len < left ? (size_t)work->views[i].len : left;
        xxh64_update(&state, work->views[i].buf, size);
        left -= size;
    }
    work->digest = xxh64_digest(&state);
}

static void *reader_thread(void *argument) {
    FrameReader *reader = argument;
    /* A woken reader must not preempt the trainer's thread (SCHED_BATCH: no wake-up
     * preemption); it runs on a core the trainer leaves idle. Where that is refused the
     * reader runs as it is. */
    struct sched_param parameters = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &parameters);
    pthread_mutex_lock(&reader->lock);
    for (;;) {
        while (!reader->head && !reader->stopping) pthread_cond_wait(&reader->queued, &reader->lock);
        job *work = reader->head;
        if (!work) break; /* stopping, and every queued job is done */
        reader->head = work->next;
        if (!reader->head) reader->tail = NULL;
        pthread_mutex_unlock(&reader->lock);
        run_job(work);
        pthread_mutex_lock(&reader->lock);
        work->done = 1;
        pthread_cond_broadcast(&reader->finished);
    }
    pthread_mutex_unlock(&reader->lock);
    return NULL;
}

/* Stops the threads once every queued job is done; the GIL is released meanwhile. */
static void stop_threads(FrameReader *reader) {
    if (!reader->thread_count || reader->owner != getpid()) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&reader->lock);
    reader->stopping = 1;
    pthread_cond_broadcast(&reader->queued);
    pthread_mutex_unlock(&reader->lock);
    for (int i = 0; i < reader->thread_count; i++) pthread_join(reader->threads[i], NULL);
    Py_END_ALLOW_THREADS
    reader->thread_count = 0;
}

static int FrameReader_init(FrameReader *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"threads", NULL};
    int threads = 2;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i", keywords, &threads)) return -1;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be 1 to %d, not %d", MAX_THREADS, threads);
        return -1;
    }
    if (self->thread_count) {
        PyErr_SetString(PyExc_RuntimeError, "FrameReader is already initialised");
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->queued, NULL);
    pthread_cond_init(&self->finished, NULL);
    self->owner = getpid();
    for (int i = 0; i < threads; i++) {
        int error = pthread_create(&self->threads[i], NULL, reader_thread, self);
        if (error) {
            stop_threads(self);
            errno = error;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        self->thread_count = i + 1;
    }
    return 0;
}

static void FrameReader_dealloc(FrameReader *self) {
    stop_threads(self); /* no Read is alive: each holds a reference to its reader */
    if (self->owner) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->queued);
        pthread_cond_destroy(&self->finished);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *FrameReader_start(FrameReader *self, PyObject *args) {
    int descriptor;
    long long offset;
    PyObject *parts;
    if (!PyArg_ParseTuple(args, "iLO", &descriptor, &offset, &parts)) return NULL;
    if (self->owner != getpid() || !self->thread_count) {
        PyErr_SetString(PyExc_RuntimeError, "this FrameReader's threads do not run in this process");
        return NULL;
    }
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "offset must not be negative");
        return NULL;
    }
    PyObject *sequence = PySequence_Fast(parts, "parts must be a sequence of writable buffers");
    if (!sequence) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    if (count < 1 || count > MAX_PARTS) {
        Py_DECREF(sequence);
        PyErr_Format(PyExc_ValueError, "1 to %d parts, not %zd", MAX_PARTS, count);
        return NULL;
    }
    job *work = PyMem_Calloc(1, sizeof(job));
    if (!work) {
        Py_DECREF(sequence);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(sequence, i), &work->views[i], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
            for (Py_ssize_t j = 0; j < i; j++) PyBuffer_Release(&work->views[j]);
            PyMem_Free(work);
            Py_DECREF(sequence);
            return NULL;
        }
        work->parts = (int)i + 1;
    }
    Py_DECREF(sequence);
    Read *read = PyObject_New(Read, &ReadType);
    if (!read) {
        for (int j = 0; j < work->parts; j++) PyBuffer_Release(&work->views[j]);
        PyMem_Free(work);
        return NULL;
    }
    work->descriptor = descriptor;
    work->offset = (off_t)offset;
    Py_INCREF(self);
    read->reader = self;
    read->job = work;
    read->collected = 0;
    pthread_mutex_lock(&self->lock);
    if (self->tail) self->tail->next = work;
    else self->head = work;
    self->tail = work;
    pthread_cond_signal(&self->queued);
    pthread_mutex_unlock(&self->lock);
    return (PyObject *)read;
}

static PyObject *FrameReader_close(FrameReader *self, PyObject *Py_UNUSED(ignored)) {
    stop_threads(self);
    Py_RETURN_NONE;
}

/* Waits (GIL released) until the read is done. */
static void wait_done(Read *self) {
    FrameReader *reader = self->reader;
    pthread_mutex_lock(&reader->lock);
    int done = self->job->done;
    pthread_mutex_unlock(&reader->lock);
    if (done) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&reader->lock);
    while (!self->job->done) pthread_cond_wait(&reader->finished, &reader->lock);
    pthread_mutex_unlock(&reader->lock);
    Py_END_ALLOW_THREADS
}

static void release_views(Read *self) {
    for (int i = 0; i < self->job->parts; i++) PyBuffer_Release(&self->job->views[i]);
    self->job->parts = 0;
}

static PyObject *Read_wait(Read *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->collected) {
        wait_done(self);
        release_views(self);
        self->collected = 1;
    }
    if (self->job->got < 0) {
        errno = (int)-self->job->got;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("nK", (Py_ssize_t)self->job->got, (unsigned long long)self->job->digest);
}

static void Read_dealloc(Read *self) {
    if (!self->collected) {
        /* the thread may still write into the buffers: they stay held until it is done */
        if (self->reader->owner == getpid()) wait_done(self);
        release_views(self);
    }
    PyMem_Free(self->job);
    Py_DECREF(self->reader);
    PyObject_Free(self);
}

static PyMethodDef FrameReader_methods[] = {
    {"start", (PyCFunction)FrameReader_start, METH_VARARGS,
     "start(descriptor, offset, parts) -> Read: queues a preadv of the file at `offset` into the writable "
     "buffers `parts` (1 to 4, filled one after another) and the xxh64 of the bytes read."},
    {"close", (PyCFunction)FrameReader_close, METH_NOARGS, "Stops the threads once every queued read is done."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Read_methods[] = {
    {"wait", (PyCFunction)Read_wait, METH_NOARGS,
     "wait() -> (bytes read, xxh64 of them): waits for the read with the GIL released; OSError when the read failed."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FrameReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mbdata_client._framereader.FrameReader",
    .tp_basicsize = sizeof(FrameReader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FrameReader(threads=2): reads and hashes frames on threads of its own.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FrameReader_init,
    .tp_dealloc = (destructor)FrameReader_dealloc,
    .tp_methods = FrameReader_methods,
};

static PyTypeObject ReadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mbdata_client._framereader.Read",
    .tp_basicsize = sizeof(Read),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A read queued by FrameReader.start.",
    .tp_dealloc = (destructor)Read_dealloc,
    .tp_methods = Read_methods,
};

static PyObject *module_xxh64(PyObject *Py_UNUSED(module), PyObject *argument) {
    Py_buffer view;
    if (PyObject_GetBuffer(argument, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    xxh64_state state;
    xxh64_reset(&state);
    xxh64_update(&state, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(xxh64_digest(&state));
}

static PyMethodDef module_methods[] = {
    {"xxh64", (PyCFunction)module_xxh64, METH_O, "xxh64(buffer) -> int: the xxh64 (seed 0) of the buffer's bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mbdata_client._framereader",
    .m_doc = "Local frames read and hashed outside the GIL.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__framereader(void) {
    if (PyType_Ready(&FrameReaderType) < 0 || PyType_Ready(&ReadType) < 0) return NULL;
    PyObject *result = PyModule_Create(&module);
    if (!result) return NULL;
    Py_INCREF(&FrameReaderType);
    if (PyModule_AddObject(result, "FrameReader", (PyObject *)&FrameReaderType) < 0) {
        Py_DECREF(&FrameReaderType);
        Py_DECREF(result);
        return NULL;
    }
    return result;
}
