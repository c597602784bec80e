/* The collector's steady-state fast path in C (optional accelerator of ingest.py).
 *
 * Ingest.verify's Python fast path accepts the steady-state frame (one record, short
 * layout, known key valid now, correct MAC, seq above the device's window, slot inside
 * both slot windows); every frame it does not accept is handed back to Python's general
 * path, which decides from scratch and names the reason. This module runs the same loop in
 * C. What it reads and writes is a documented interface, nothing private:
 *
 *   KeyTable(entries)   built by keys.Keyring.fast_keys() from each key's public fields
 *                       (device_id, kid, key, not_before, not_after, mac) and the ack
 *                       layout's prefix, wire.ack_prefix(); it keeps the two HMAC
 *                       midstates of each key, so the MAC of a frame and of its ack is
 *                       computed here (SHA-256 below, held equal to hmac.new by tests)
 *                       without a Python call.
 *   FastPath(frame_columns, value_columns, tag_len, epoch, slot_seconds, peer_of)
 *                       the row layouts are store.FRAME_COLUMNS / store.VALUE_COLUMNS: each
 *                       row is built in the order those names give (any order: the names
 *                       are mapped here once), so the stored row is declared in one place.
 *     .accept_run(batch, datagrams, start, keys, windows) -> (next, accepted)
 *                       batch: an ingest.Batch, read by its attribute names (now, now_ms,
 *                       latest_end, oldest_end_ms, frames, values, pending, acks, peers);
 *                       windows: {device_id: replay_guard.ReplayWindow}, used through its
 *                       `top` and `mark` (the window logic stays in Python, once).
 *     .acks_out(acks, out, keys, max_seqs)  the batch's acks, computed here.
 *
 * tests/host/test_collector_fast_path.py checks that batches give the same acks, counters
 * and rows with this module, with the Python fast path and with neither.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *s_top, *s_mark, *s_now, *s_now_ms, *s_latest_end, *s_oldest_end_ms,
    *s_frames, *s_values, *s_pending, *s_acks, *s_peers;

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};
static const uint32_t H256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block_portable(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16)
               | ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
    for (i = 16; i < 64; i++)
        w[i] = (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10)) + w[i - 7]
               + (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 16];
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; k = h[7];
    for (i = 0; i < 64; i++) {
        t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1

/* One block with the x86 SHA extensions (SHA-NI): about a tenth of the portable code's time.
 * Four rounds per step; the message schedule W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) +
 * W[t-16] four words at a time (sha256msg1 / alignr / sha256msg2). */
__attribute__((target("sha,sse4.1,ssse3"))) static void
sha256_block_ni(uint32_t h[8], const unsigned char *p)
{
    const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i st0, st1, tmp, w[4], m, abef, cdgh;
    int i;

    tmp = _mm_loadu_si128((const __m128i *)&h[0]);
    st1 = _mm_loadu_si128((const __m128i *)&h[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);       /* CDAB */
    st1 = _mm_shuffle_epi32(st1, 0x1B);       /* EFGH */
    st0 = _mm_alignr_epi8(tmp, st1, 8);       /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xF0);    /* CDGH */
    abef = st0;
    cdgh = st1;
    for (i = 0; i < 16; i++) {
        if (i < 4) {
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);
        }
        else {
            tmp = _mm_sha256msg1_epu32(w[i & 3], w[(i - 3) & 3]);
            tmp = _mm_add_epi32(tmp, _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4));
            w[i & 3] = _mm_sha256msg2_epu32(tmp, w[(i - 1) & 3]);
        }
        m = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&K256[4 * i]));
        st1 = _mm_sha256rnds2_epu32(st1, st0, m);
        m = _mm_shuffle_epi32(m, 0x0E);
        st0 = _mm_sha256rnds2_epu32(st0, st1, m);
    }
    st0 = _mm_add_epi32(st0, abef);
    st1 = _mm_add_epi32(st1, cdgh);
    tmp = _mm_shuffle_epi32(st0, 0x1B);       /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xB1);       /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xF0);    /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);       /* HGFE */
    _mm_storeu_si128((__m128i *)&h[0], st0);
    _mm_storeu_si128((__m128i *)&h[4], st1);
}

static int
cpu_has_sha_ni(void)
{
    unsigned int a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
        return 0;  /* SSSE3, SSE4.1 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1;  /* SHA */
}
#endif

/* The block function in use: SHA-NI where the CPU has it, else the portable one. */
static void (*sha256_block)(uint32_t h[8], const unsigned char *p) = sha256_block_portable;

/* SHA-256 of msg[0:n] continued from state h, which has already absorbed `done` bytes (a
 * multiple of 64); the digest goes to out. */
static void
sha256_finish(const uint32_t h0[8], uint64_t done, const unsigned char *msg, size_t n,
              unsigned char out[32])
{
    uint32_t h[8];
    unsigned char blk[128];
    uint64_t bits = (done + n) * 8;
    size_t r, m, i;

    memcpy(h, h0, sizeof h);
    while (n >= 64) {
        sha256_block(h, msg);
        msg += 64;
        n -= 64;
    }
    r = n;
    memcpy(blk, msg, r);
    blk[r] = 0x80;
    m = r + 1 <= 56 ? 64 : 128;
    memset(blk + r + 1, 0, m - r - 1);
    for (i = 0; i < 8; i++)
        blk[m - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, blk);
    if (m == 128)
        sha256_block(h, blk + 64);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* HMAC-SHA256 (RFC 2104) from the midstates after key^ipad and key^opad (one block each). */
static void
hmac_mid(const uint32_t inner[8], const uint32_t outer[8], const unsigned char *msg, size_t n,
         unsigned char out[32])
{
    unsigned char d[32];

    sha256_finish(inner, 64, msg, n, d);
    sha256_finish(outer, 64, d, 32, out);
}

static void
hmac_midstates(const unsigned char *key, size_t klen, uint32_t inner[8], uint32_t outer[8])
{
    unsigned char k[64], pad[64];
    size_t i;

    memset(k, 0, sizeof k);
    if (klen > 64)
        sha256_finish(H256, 0, key, klen, k);
    else
        memcpy(k, key, klen);
    memcpy(inner, H256, sizeof H256);
    memcpy(outer, H256, sizeof H256);
    for (i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_block(inner, pad);
    for (i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_block(outer, pad);
}

/* hmac_sha256(key, msg, portable=False) -> 32 bytes: for the tests that hold this code (both
 * block functions) equal to hmac.new. */
static PyObject *
py_hmac_sha256(PyObject *self, PyObject *args)
{
    Py_buffer key, msg;
    uint32_t inner[8], outer[8];
    unsigned char out[32];
    int portable = 0;
    void (*used)(uint32_t *, const unsigned char *) = sha256_block;

    if (!PyArg_ParseTuple(args, "y*y*|p", &key, &msg, &portable))
        return NULL;
    if (portable)
        sha256_block = sha256_block_portable;  /* the GIL is held: no other caller meanwhile */
    hmac_midstates(key.buf, (size_t)key.len, inner, outer);
    hmac_mid(inner, outer, msg.buf, (size_t)msg.len, out);
    sha256_block = used;
    PyBuffer_Release(&key);
    PyBuffer_Release(&msg);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* ---------------------------------------------------------------- KeyTable */

#define PREFIX_MAX 32  /* wire.ack_prefix: map, key 1, [kid, dev], key 4 (16 bytes at most) */

typedef struct {
    uint64_t dev;
    uint32_t kid;
    int used;
    uint32_t inner[8], outer[8];
    double not_before, not_after;  /* -inf / +inf for "none" */
    PyObject *dev_obj, *kid_obj, *mac;
    unsigned char prefix[PREFIX_MAX];
    Py_ssize_t prefix_len;
} KeySlot;

typedef struct {
    PyObject_HEAD
    KeySlot *slots;
    size_t mask;  /* capacity - 1, a power of two */
    Py_ssize_t n;
} KeyTable;

static size_t
key_hash(uint64_t dev, uint32_t kid)
{
    uint64_t x = dev * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)kid * 0xC2B2AE3D27D4EB4FULL);
    return (size_t)(x ^ (x >> 29));
}

static KeySlot *
key_find(KeyTable *t, uint64_t dev, uint32_t kid)
{
    size_t i;

    if (t->slots == NULL)
        return NULL;
    for (i = key_hash(dev, kid) & t->mask;; i = (i + 1) & t->mask) {
        KeySlot *s = &t->slots[i];
        if (!s->used)
            return NULL;
        if (s->dev == dev && s->kid == kid)
            return s;
    }
}

static void
KeyTable_dealloc(KeyTable *t)
{
    size_t i;

    if (t->slots != NULL) {
        for (i = 0; i <= t->mask; i++) {
            Py_XDECREF(t->slots[i].dev_obj);
            Py_XDECREF(t->slots[i].kid_obj);
            Py_XDECREF(t->slots[i].mac);
        }
        PyMem_Free(t->slots);
    }
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static double
bound(PyObject *v, double none)
{
    return v == Py_None ? none : PyFloat_AsDouble(v);
}

/* KeyTable(entries): entries a sequence of (device_id, kid, key, not_before, not_after, mac,
 * ack_prefix); not_before/not_after None or unix seconds, as keys.KeyEntry. */
static int
KeyTable_init(KeyTable *t, PyObject *args, PyObject *kw)
{
    PyObject *entries, *seq;
    Py_ssize_t n, j;
    size_t cap = 8;

    if (t->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "KeyTable already built");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O", &entries))
        return -1;
    seq = PySequence_Fast(entries, "KeyTable needs a sequence of entries");
    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    while (cap < (size_t)n * 2)
        cap *= 2;
    t->slots = PyMem_Calloc(cap, sizeof(KeySlot));
    if (t->slots == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    t->mask = cap - 1;
    for (j = 0; j < n; j++) {
        PyObject *e = PySequence_Fast_GET_ITEM(seq, j), *dev_o, *kid_o, *nb, *na, *mac;
        Py_buffer key, prefix;
        unsigned long long dev;
        unsigned long kid;
        size_t i;
        KeySlot *s;

        if (!PyArg_ParseTuple(e, "O!O!y*OOOy*", &PyLong_Type, &dev_o, &PyLong_Type, &kid_o,
                              &key, &nb, &na, &mac, &prefix))
            goto fail;
        dev = PyLong_AsUnsignedLongLong(dev_o);
        kid = PyLong_AsUnsignedLong(kid_o);
        if (PyErr_Occurred() || kid > 0xFFFF || prefix.len > PREFIX_MAX) {
            PyBuffer_Release(&key);
            PyBuffer_Release(&prefix);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "kid or ack prefix out of range");
            goto fail;
        }
        for (i = key_hash(dev, (uint32_t)kid) & t->mask; t->slots[i].used
             && !(t->slots[i].dev == dev && t->slots[i].kid == kid); i = (i + 1) & t->mask)
            ;
        s = &t->slots[i];
        if (s->used) {
            PyBuffer_Release(&key);
            PyBuffer_Release(&prefix);
            PyErr_SetString(PyExc_ValueError, "duplicate (device_id, kid)");
            goto fail;
        }
        s->used = 1;
        s->dev = dev;
        s->kid = (uint32_t)kid;
        hmac_midstates(key.buf, (size_t)key.len, s->inner, s->outer);
        memcpy(s->prefix, prefix.buf, (size_t)prefix.len);
        s->prefix_len = prefix.len;
        PyBuffer_Release(&key);
        PyBuffer_Release(&prefix);
        s->not_before = bound(nb, -INFINITY);
        s->not_after = bound(na, INFINITY);
        if (PyErr_Occurred())
            goto fail;
        Py_INCREF(dev_o);
        s->dev_obj = dev_o;
        Py_INCREF(kid_o);
        s->kid_obj = kid_o;
        Py_INCREF(mac);
        s->mac = mac;
        t->n++;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static Py_ssize_t
KeyTable_len(KeyTable *t)
{
    return t->n;
}

static PySequenceMethods KeyTable_seq = {.sq_length = (lenfunc)KeyTable_len};

static PyTypeObject KeyTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "host_tools.collector._fastpath.KeyTable",
    .tp_basicsize = sizeof(KeyTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "KeyTable([(device_id, kid, key, not_before, not_after, mac, ack_prefix)])",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)KeyTable_init,
    .tp_dealloc = (destructor)KeyTable_dealloc,
    .tp_as_sequence = &KeyTable_seq,
};

/* One CBOR unsigned int (major type 0) in shortest form, at most `width` bytes wide, at
 * p[*i]: the same bytes wire._SHORT's _U16/_U32/_U64 groups accept. */
static int
uint_head(const unsigned char *p, Py_ssize_t n, Py_ssize_t *i, int width, uint64_t *v)
{
    Py_ssize_t k = *i;
    unsigned char h;
    int j;
    uint64_t x;

    if (k >= n)
        return 0;
    h = p[k];
    if (h < 0x18) {
        *v = h;
        *i = k + 1;
        return 1;
    }
    if (h == 0x18) {
        if (k + 2 > n || p[k + 1] < 0x18)
            return 0;
        *v = p[k + 1];
        *i = k + 2;
        return 1;
    }
    if (h == 0x19) {
        if (k + 3 > n || p[k + 1] == 0)
            return 0;
        *v = ((uint64_t)p[k + 1] << 8) | p[k + 2];
        *i = k + 3;
        return 1;
    }
    if (h == 0x1a && width >= 4) {
        if (k + 5 > n || (p[k + 1] | p[k + 2]) == 0)
            return 0;
        x = 0;
        for (j = 1; j <= 4; j++)
            x = (x << 8) | p[k + j];
        *v = x;
        *i = k + 5;
        return 1;
    }
    if (h == 0x1b && width >= 8) {
        if (k + 9 > n || (p[k + 1] | p[k + 2] | p[k + 3] | p[k + 4]) == 0)
            return 0;
        x = 0;
        for (j = 1; j <= 8; j++)
            x = (x << 8) | p[k + j];
        *v = x;
        *i = k + 9;
        return 1;
    }
    return 0;
}

typedef struct {
    uint64_t kid, dev, seq, status, slot, imp, exp, flags;
    Py_ssize_t body_len;
} Short;

/* {1: [kid u16, dev u64, seq u64, status u16], 2: [slot u32, imp u32, exp u32, flags u16]}
 * at the start of p, as wire._SHORT matches it (a prefix match: the tag follows). */
static int
parse_short_c(const unsigned char *p, Py_ssize_t n, Short *s)
{
    Py_ssize_t i = 3;

    if (n < 3 || p[0] != 0xa2 || p[1] != 0x01 || p[2] != 0x84)
        return 0;
    if (!uint_head(p, n, &i, 2, &s->kid) || !uint_head(p, n, &i, 8, &s->dev)
        || !uint_head(p, n, &i, 8, &s->seq) || !uint_head(p, n, &i, 2, &s->status))
        return 0;
    if (i + 2 > n || p[i] != 0x02 || p[i + 1] != 0x84)
        return 0;
    i += 2;
    if (!uint_head(p, n, &i, 4, &s->slot) || !uint_head(p, n, &i, 4, &s->imp)
        || !uint_head(p, n, &i, 4, &s->exp) || !uint_head(p, n, &i, 2, &s->flags))
        return 0;
    s->body_len = i;
    return 1;
}

static PyObject *
parse_short(PyObject *self, PyObject *arg)
{
    Short s;

    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "parse_short needs bytes");
        return NULL;
    }
    if (!parse_short_c((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg), &s))
        Py_RETURN_NONE;
    return Py_BuildValue("(KKKKKKKKn)", (unsigned long long)s.kid, (unsigned long long)s.dev,
                         (unsigned long long)s.seq, (unsigned long long)s.status,
                         (unsigned long long)s.slot, (unsigned long long)s.imp,
                         (unsigned long long)s.exp, (unsigned long long)s.flags, s.body_len);
}

/* acks[(addr, dev, kid)]: (mac, seq) for the first frame, then (mac, [seq, ...]). */
static int
add_ack(PyObject *acks, PyObject *addr, PyObject *dev, PyObject *kid, PyObject *mac,
        PyObject *seq)
{
    PyObject *key, *a, *v, *lst;
    int rc;

    key = PyTuple_Pack(3, addr, dev, kid);
    if (key == NULL)
        return -1;
    a = PyDict_GetItemWithError(acks, key);  /* borrowed */
    if (a == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        v = PyTuple_Pack(2, mac, seq);
    }
    else if (PyList_CheckExact(PyTuple_GET_ITEM(a, 1))) {
        Py_DECREF(key);
        return PyList_Append(PyTuple_GET_ITEM(a, 1), seq);
    }
    else {
        lst = PyList_New(2);
        if (lst == NULL) {
            Py_DECREF(key);
            return -1;
        }
        Py_INCREF(PyTuple_GET_ITEM(a, 1));
        PyList_SET_ITEM(lst, 0, PyTuple_GET_ITEM(a, 1));
        Py_INCREF(seq);
        PyList_SET_ITEM(lst, 1, seq);
        v = PyTuple_Pack(2, PyTuple_GET_ITEM(a, 0), lst);
        Py_DECREF(lst);
    }
    if (v == NULL) {
        Py_DECREF(key);
        return -1;
    }
    rc = PyDict_SetItem(acks, key, v);
    Py_DECREF(key);
    Py_DECREF(v);
    return rc;
}

/* The shortest CBOR head of an unsigned int, as wire._cbor_uint. */
static Py_ssize_t
cbor_uint(uint64_t v, unsigned char *out)
{
    int w, j;

    if (v < 24) {
        out[0] = (unsigned char)v;
        return 1;
    }
    if (v < 0x100) {
        out[0] = 0x18;
        w = 1;
    }
    else if (v < 0x10000) {
        out[0] = 0x19;
        w = 2;
    }
    else if (v < 0x100000000ULL) {
        out[0] = 0x1a;
        w = 4;
    }
    else {
        out[0] = 0x1b;
        w = 8;
    }
    for (j = w; j >= 1; j--) {
        out[j] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    return 1 + w;
}

/* ---------------------------------------------------------------- FastPath */

/* Fields a stored row can hold; store.FRAME_COLUMNS / VALUE_COLUMNS name them. */
enum { F_DEVICE_ID, F_SEQ, F_KID, F_STATUS, F_N_RECORDS, F_ARRIVED_MS, F_PEER, F_RAW, F_SLOT,
       F_IMPORT_WH, F_EXPORT_WH, F_FLAGS, F_DELAY_MS, F_COUNT };
static const char *FIELD_NAMES[F_COUNT] = {
    "device_id", "seq", "kid", "status", "n_records", "arrived_ms", "peer", "raw", "slot",
    "import_wh", "export_wh", "flags", "delay_ms"};
#define MAX_COLS 16

typedef struct {
    PyObject_HEAD
    int frame_cols[MAX_COLS], value_cols[MAX_COLS];
    Py_ssize_t n_frame, n_value;
    Py_ssize_t tag_len[8];  /* -1: no such algorithm */
    long long epoch, slot_s;
    PyObject *peer_of;
} FastPath;

static void
FastPath_dealloc(FastPath *f)
{
    Py_XDECREF(f->peer_of);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static int
columns(PyObject *names, int *out, Py_ssize_t *n, const char *what)
{
    PyObject *seq = PySequence_Fast(names, "columns must be a sequence of names");
    Py_ssize_t j;
    int k;

    if (seq == NULL)
        return -1;
    *n = PySequence_Fast_GET_SIZE(seq);
    if (*n < 1 || *n > MAX_COLS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: 1 to %d columns", what, MAX_COLS);
        return -1;
    }
    for (j = 0; j < *n; j++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, j));
        if (name == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        for (k = 0; k < F_COUNT && strcmp(name, FIELD_NAMES[k]) != 0; k++)
            ;
        if (k == F_COUNT) {
            PyErr_Format(PyExc_ValueError, "%s: no field for column %s", what, name);
            Py_DECREF(seq);
            return -1;
        }
        out[j] = k;
    }
    Py_DECREF(seq);
    return 0;
}

static int
FastPath_init(FastPath *f, PyObject *args, PyObject *kw)
{
    static char *names[] = {"frame_columns", "value_columns", "tag_len", "epoch",
                            "slot_seconds", "peer_of", NULL};
    PyObject *fc, *vc, *tl, *peer_of;
    int j;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO!LLO", names, &fc, &vc, &PyTuple_Type, &tl,
                                     &f->epoch, &f->slot_s, &peer_of))
        return -1;
    if (columns(fc, f->frame_cols, &f->n_frame, "frame_columns") < 0
        || columns(vc, f->value_cols, &f->n_value, "value_columns") < 0)
        return -1;
    if (PyTuple_GET_SIZE(tl) != 8) {
        PyErr_SetString(PyExc_ValueError, "tag_len: 8 entries (tag length or None)");
        return -1;
    }
    for (j = 0; j < 8; j++) {
        PyObject *v = PyTuple_GET_ITEM(tl, j);
        f->tag_len[j] = v == Py_None ? -1 : PyLong_AsSsize_t(v);
        if (f->tag_len[j] == -1 && PyErr_Occurred())
            return -1;
        if (v != Py_None && (f->tag_len[j] < 1 || f->tag_len[j] > 32)) {
            PyErr_SetString(PyExc_ValueError, "tag_len: 1..32 bytes");
            return -1;
        }
    }
    Py_INCREF(peer_of);
    Py_XSETREF(f->peer_of, peer_of);
    return 0;
}

typedef struct {  /* one accepted frame, for its two rows */
    const Short *s;
    KeySlot *key;
    PyObject *seq, *peer, *data, *now_ms;
    long long now_ms_v, end_ms;
} Accepted;

static PyObject *
field(int which, const Accepted *a)
{
    const Short *s = a->s;

    switch (which) {
    case F_DEVICE_ID:  /* signed 64-bit as stored (two's complement, store.s64) */
        return PyLong_FromLongLong((long long)(int64_t)s->dev);
    case F_SEQ:
        return PyLong_FromLongLong((long long)(int64_t)s->seq);
    case F_KID:
        Py_INCREF(a->key->kid_obj);
        return a->key->kid_obj;
    case F_STATUS:
        return PyLong_FromUnsignedLongLong(s->status);
    case F_N_RECORDS:
        return PyLong_FromLong(1);
    case F_ARRIVED_MS:
        Py_INCREF(a->now_ms);
        return a->now_ms;
    case F_PEER:
        Py_INCREF(a->peer);
        return a->peer;
    case F_RAW:
        Py_INCREF(a->data);
        return a->data;
    case F_SLOT:
        return PyLong_FromUnsignedLongLong(s->slot);
    case F_IMPORT_WH:
        return PyLong_FromUnsignedLongLong(s->imp);
    case F_EXPORT_WH:
        return PyLong_FromUnsignedLongLong(s->exp);
    case F_FLAGS:
        return PyLong_FromUnsignedLongLong(s->flags);
    case F_DELAY_MS:
        return PyLong_FromLongLong(a->now_ms_v - a->end_ms);
    }
    PyErr_SetString(PyExc_SystemError, "unknown row field");
    return NULL;
}

static int
append_row(PyObject *list, const int *cols, Py_ssize_t n, const Accepted *a)
{
    PyObject *row = PyTuple_New(n), *v;
    Py_ssize_t j;
    int rc;

    if (row == NULL)
        return -1;
    for (j = 0; j < n; j++) {
        v = field(cols[j], a);
        if (v == NULL) {
            Py_DECREF(row);
            return -1;
        }
        PyTuple_SET_ITEM(row, j, v);
    }
    rc = PyList_Append(list, row);
    Py_DECREF(row);
    return rc;
}

/* batch attribute `name` (a new reference) that must be of type `type` (NULL: any) */
static PyObject *
battr(PyObject *batch, PyObject *name, PyTypeObject *type)
{
    PyObject *v = PyObject_GetAttr(batch, name);

    if (v != NULL && type != NULL && !PyObject_TypeCheck(v, type)) {
        PyErr_Format(PyExc_TypeError, "batch.%U: %s expected", name, type->tp_name);
        Py_CLEAR(v);
    }
    return v;
}

/* accept_run(batch, datagrams, start, keys, windows) -> (next, accepted)
 *
 * Accepts datagrams[start:] in order while each is a steady-state frame and returns the
 * index of the first one that is not (len(datagrams) when all were), left untouched for
 * the general path. */
static PyObject *
FastPath_accept_run(FastPath *f, PyObject *args)
{
    PyObject *batch, *dl, *windows, *now_o = NULL, *now_ms_o = NULL, *latest_o = NULL,
        *oldest_o = NULL, *frames = NULL, *values = NULL, *pending = NULL, *acks = NULL,
        *peers = NULL, *ret = NULL;
    KeyTable *keys;
    Py_ssize_t start, n, i, accepted = 0;
    double now, latest_end;
    long long oldest_end_ms, now_ms;

    if (!PyArg_ParseTuple(args, "OO!nO!O!", &batch, &PyList_Type, &dl, &start, &KeyTableType,
                          &keys, &PyDict_Type, &windows))
        return NULL;
    if ((now_o = battr(batch, s_now, NULL)) == NULL
        || (now_ms_o = battr(batch, s_now_ms, &PyLong_Type)) == NULL
        || (latest_o = battr(batch, s_latest_end, NULL)) == NULL
        || (oldest_o = battr(batch, s_oldest_end_ms, &PyLong_Type)) == NULL
        || (frames = battr(batch, s_frames, &PyList_Type)) == NULL
        || (values = battr(batch, s_values, &PyList_Type)) == NULL
        || (pending = battr(batch, s_pending, &PyDict_Type)) == NULL
        || (acks = battr(batch, s_acks, &PyDict_Type)) == NULL
        || (peers = battr(batch, s_peers, &PyDict_Type)) == NULL)
        goto done;
    now = PyFloat_AsDouble(now_o);
    latest_end = PyFloat_AsDouble(latest_o);
    oldest_end_ms = PyLong_AsLongLong(oldest_o);
    now_ms = PyLong_AsLongLong(now_ms_o);
    if (PyErr_Occurred())
        goto done;
    n = PyList_GET_SIZE(dl);
    for (i = start < 0 ? 0 : start; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(dl, i), *data, *addr, *seq = NULL, *key, *win, *top,
            *r, *peer;
        const char *p;
        Py_ssize_t len, tlen;
        long long end, end_ms;
        unsigned char mac[32], diff = 0;
        Short s;
        KeySlot *ks;
        Accepted a;
        int ok, j;

        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            break;
        data = PyTuple_GET_ITEM(item, 0);
        addr = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_CheckExact(data))
            break;
        p = PyBytes_AS_STRING(data);
        len = PyBytes_GET_SIZE(data);
        if (!parse_short_c((const unsigned char *)p, len, &s))
            break;
        tlen = f->tag_len[s.kid & 7];
        if (tlen < 0 || len - s.body_len != tlen)
            break;
        if (s.status & 16)  /* ST_TIME_REQUEST: the general path acks it with the time */
            break;
        /* slot <= 2**32 - 1: end and end_ms stay far inside 64 bits */
        end = f->epoch + ((long long)s.slot + 1) * f->slot_s;
        end_ms = end * 1000;
        if (!((double)end <= latest_end) || end_ms < oldest_end_ms)
            break;
        ks = key_find(keys, s.dev, (uint32_t)s.kid);
        if (ks == NULL || now < ks->not_before || !(now < ks->not_after))
            break;  /* as KeyEntry.valid_at */
        win = PyDict_GetItemWithError(windows, ks->dev_obj);  /* borrowed */
        if (win == NULL) {
            if (PyErr_Occurred())
                goto done;
            break;
        }
        seq = PyLong_FromUnsignedLongLong(s.seq);
        if (seq == NULL)
            goto done;
        top = PyObject_GetAttr(win, s_top);
        if (top == NULL)
            goto error;
        ok = PyObject_RichCompareBool(seq, top, Py_GT);
        Py_DECREF(top);
        if (ok < 0)
            goto error;
        if (!ok)
            goto stop;
        hmac_mid(ks->inner, ks->outer, (const unsigned char *)p, (size_t)s.body_len, mac);
        for (j = 0; j < tlen; j++)  /* constant time, as hmac.compare_digest */
            diff |= mac[j] ^ (unsigned char)p[s.body_len + j];
        if (diff != 0)
            goto stop;

        /* accepted: the same effects, in the same order, as the Python fast path */
        r = PyObject_CallMethodOneArg(win, s_mark, seq);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
        key = PyTuple_Pack(2, ks->dev_obj, seq);
        if (key == NULL)
            goto error;
        ok = PyDict_SetItem(pending, key, data);
        Py_DECREF(key);
        if (ok < 0)
            goto error;
        peer = PyDict_GetItemWithError(peers, addr);  /* borrowed */
        if (peer == NULL) {
            if (PyErr_Occurred())
                goto error;
            r = PyObject_CallOneArg(f->peer_of, addr);
            if (r == NULL)
                goto error;
            ok = PyDict_SetItem(peers, addr, r);
            Py_DECREF(r);  /* the dict holds it */
            if (ok < 0)
                goto error;
            peer = r;
        }
        a.s = &s;
        a.key = ks;
        a.seq = seq;
        a.peer = peer;
        a.data = data;
        a.now_ms = now_ms_o;
        a.now_ms_v = now_ms;
        a.end_ms = end_ms;
        if (append_row(frames, f->frame_cols, f->n_frame, &a) < 0
            || append_row(values, f->value_cols, f->n_value, &a) < 0
            || add_ack(acks, addr, ks->dev_obj, ks->kid_obj, ks->mac, seq) < 0)
            goto error;
        accepted++;
        Py_DECREF(seq);
        continue;
    stop:
        Py_DECREF(seq);
        break;
    error:
        Py_DECREF(seq);
        goto done;
    }
    ret = Py_BuildValue("(nn)", i, accepted);
done:
    Py_XDECREF(now_o);
    Py_XDECREF(now_ms_o);
    Py_XDECREF(latest_o);
    Py_XDECREF(oldest_o);
    Py_XDECREF(frames);
    Py_XDECREF(values);
    Py_XDECREF(pending);
    Py_XDECREF(acks);
    Py_XDECREF(peers);
    return ret;
}

/* An ack of seqs[0:n] (ascending): wire.ack_prefix, the array of seqs, then the MAC of both
 * (the layout wire.encode_ack writes; tests hold them byte-equal). */
static PyObject *
ack_bytes(const KeySlot *ks, Py_ssize_t tlen, const uint64_t *seqs, Py_ssize_t n)
{
    unsigned char small[PREFIX_MAX + 9 + 9 * 4], *msg = small, mac[32];
    size_t cap = PREFIX_MAX + 9 + 9 * (size_t)n;
    Py_ssize_t m, j;
    PyObject *out;

    if (cap > sizeof small && (msg = PyMem_Malloc(cap)) == NULL)
        return PyErr_NoMemory();
    memcpy(msg, ks->prefix, (size_t)ks->prefix_len);
    m = ks->prefix_len + cbor_uint((uint64_t)n, msg + ks->prefix_len);
    msg[ks->prefix_len] |= 0x80;  /* major type 4: array */
    for (j = 0; j < n; j++)
        m += cbor_uint(seqs[j], msg + m);
    hmac_mid(ks->inner, ks->outer, msg, (size_t)m, mac);
    out = PyBytes_FromStringAndSize(NULL, m + tlen);
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), msg, (size_t)m);
        memcpy(PyBytes_AS_STRING(out) + m, mac, (size_t)tlen);
    }
    if (msg != small)
        PyMem_Free(msg);
    return out;
}

static int
append_pair(PyObject *out, PyObject *addr, PyObject *ack)
{
    PyObject *pair;
    int rc;

    if (ack == NULL)
        return -1;
    pair = PyTuple_Pack(2, addr, ack);
    Py_DECREF(ack);
    if (pair == NULL)
        return -1;
    rc = PyList_Append(out, pair);
    Py_DECREF(pair);
    return rc;
}

/* acks_out(acks, out, keys, max_seqs): for each acks item of Ingest.verify ((addr, dev, kid)
 * -> (mac, seq) or (mac, [seqs])), appends (addr, ack) to out: one ack per max_seqs of the
 * device's distinct seqs, ascending, as Ingest._acks_multi. Returns None. */
static PyObject *
FastPath_acks_out(FastPath *f, PyObject *args)
{
    PyObject *acks, *out, *key, *val, *seqs_o;
    KeyTable *keys;
    Py_ssize_t pos = 0, max_seqs, n, j, k, tlen;
    uint64_t one, *seqs;
    unsigned long long dev;
    unsigned long kid;
    KeySlot *ks;

    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyDict_Type, &acks, &PyList_Type, &out,
                          &KeyTableType, &keys, &max_seqs))
        return NULL;
    if (max_seqs < 1) {
        PyErr_SetString(PyExc_ValueError, "max_seqs must be >= 1");
        return NULL;
    }
    while (PyDict_Next(acks, &pos, &key, &val)) {
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 3
            || !PyTuple_CheckExact(val) || PyTuple_GET_SIZE(val) != 2) {
            PyErr_SetString(PyExc_TypeError, "acks: (addr, dev, kid) -> (mac, seqs)");
            return NULL;
        }
        dev = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(key, 1));
        kid = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(key, 2));
        if (PyErr_Occurred())
            return NULL;
        ks = key_find(keys, dev, (uint32_t)kid);
        tlen = f->tag_len[kid & 7];
        if (ks == NULL || kid > 0xFFFF || tlen < 0) {
            PyErr_SetString(PyExc_KeyError, "ack for a key the table does not hold");
            return NULL;
        }
        seqs_o = PyTuple_GET_ITEM(val, 1);
        if (PyLong_CheckExact(seqs_o)) {  /* the steady state: one frame of the device */
            one = PyLong_AsUnsignedLongLong(seqs_o);
            if (PyErr_Occurred()
                || append_pair(out, PyTuple_GET_ITEM(key, 0), ack_bytes(ks, tlen, &one, 1)) < 0)
                return NULL;
            continue;
        }
        if (!PyList_CheckExact(seqs_o) || PyList_Sort(seqs_o) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "acks: seqs must be an int or a list");
            return NULL;
        }
        n = PyList_GET_SIZE(seqs_o);
        seqs = PyMem_Malloc(sizeof *seqs * (size_t)(n ? n : 1));
        if (seqs == NULL)
            return PyErr_NoMemory();
        for (j = k = 0; j < n; j++) {  /* distinct, ascending */
            one = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(seqs_o, j));
            if (one == (uint64_t)-1 && PyErr_Occurred()) {
                PyMem_Free(seqs);
                return NULL;
            }
            if (k == 0 || seqs[k - 1] != one)
                seqs[k++] = one;
        }
        for (j = 0; j < k; j += max_seqs) {
            if (append_pair(out, PyTuple_GET_ITEM(key, 0),
                            ack_bytes(ks, tlen, seqs + j, k - j < max_seqs ? k - j : max_seqs))
                < 0) {
                PyMem_Free(seqs);
                return NULL;
            }
        }
        PyMem_Free(seqs);
    }
    Py_RETURN_NONE;
}

static PyMethodDef FastPath_methods[] = {
    {"accept_run", (PyCFunction)FastPath_accept_run, METH_VARARGS,
     "accept_run(batch, datagrams, start, keys, windows) -> (next, accepted); see Ingest.verify"},
    {"acks_out", (PyCFunction)FastPath_acks_out, METH_VARARGS,
     "acks_out(acks, out, keys, max_seqs); see Ingest.verify"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "host_tools.collector._fastpath.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FastPath(frame_columns, value_columns, tag_len, epoch, slot_seconds, peer_of)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_methods = FastPath_methods,
};

static PyMethodDef methods[] = {
    {"parse_short", parse_short, METH_O,
     "parse_short(data) -> (kid, dev, seq, status, slot, imp, exp, flags, body_len) or None"},
    {"hmac_sha256", py_hmac_sha256, METH_VARARGS,
     "hmac_sha256(key, msg, portable=False) -> the 32-byte HMAC-SHA256 this module computes "
     "(tests; portable: with the portable block function even where SHA-NI is used)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath",
    "The collector's steady-state fast path in C (host_tools/collector/ingest.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *m;

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(s_top, "top");
    INTERN(s_mark, "mark");
    INTERN(s_now, "now");
    INTERN(s_now_ms, "now_ms");
    INTERN(s_latest_end, "latest_end");
    INTERN(s_oldest_end_ms, "oldest_end_ms");
    INTERN(s_frames, "frames");
    INTERN(s_values, "values");
    INTERN(s_pending, "pending");
    INTERN(s_acks, "acks");
    INTERN(s_peers, "peers");
#undef INTERN
    if (PyType_Ready(&KeyTableType) < 0 || PyType_Ready(&FastPathType) < 0)
        return NULL;
#ifdef HAVE_SHA_NI
    if (cpu_has_sha_ni())
        sha256_block = sha256_block_ni;
#endif
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SHA256_BLOCK",
                                   sha256_block == sha256_block_portable ? "portable"
                                                                         : "sha-ni") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&KeyTableType);
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(m, "KeyTable", (PyObject *)&KeyTableType) < 0
        || PyModule_AddObject(m, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
