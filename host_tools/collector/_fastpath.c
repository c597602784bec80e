/* The collector's steady-state fast path in C (optional accelerator of ingest.py).
 *
 * Ingest.verify's Python fast path accepts the steady-state frame (one record, short
 * layout, known key valid now, correct MAC, seq above the device's window, slot inside
 * both slot windows). About half of its cost is interpreter overhead around a few
 * C calls, so this module runs the same loop in C. It decides nothing new: every frame it
 * does not accept is handed back to Python's general path, which decides from scratch and
 * names the reason. It reads and writes the same Python objects (windows, key entries,
 * MacKey SHA-256 states, the batch's lists and dicts) through their methods, so the replay
 * windows and the key handling stay implemented once, in Python. Only MacKey's HMAC finish
 * and ack assembly are repeated here (mac_finish, ack_one_c): calling the Python methods
 * cost about 12 % of a batched frame; the tests hold both byte-equal.
 * tests/host/test_collector_fast_path.py checks that batches give the same acks, counters
 * and rows with this module, with the Python fast path and with neither.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *s_top, *s_mark, *s_valid_at, *s_mac, *s_inner, *s_outer, *s_ack, *s_ack_one,
    *s_copy, *s_update, *s_digest;

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

/* MacKey._finish: the HMAC from an inner SHA-256 state that has absorbed the message
 * (a new reference to the 32-byte digest, or NULL). */
static PyObject *
mac_finish(PyObject *mac, PyObject *inner)
{
    PyObject *d1, *o0, *o, *r, *d;

    d1 = PyObject_CallMethodNoArgs(inner, s_digest);
    if (d1 == NULL)
        return NULL;
    o0 = PyObject_GetAttr(mac, s_outer);
    if (o0 == NULL) {
        Py_DECREF(d1);
        return NULL;
    }
    o = PyObject_CallMethodNoArgs(o0, s_copy);
    Py_DECREF(o0);
    if (o == NULL) {
        Py_DECREF(d1);
        return NULL;
    }
    r = PyObject_CallMethodOneArg(o, s_update, d1);
    Py_DECREF(d1);
    if (r == NULL) {
        Py_DECREF(o);
        return NULL;
    }
    Py_DECREF(r);
    d = PyObject_CallMethodNoArgs(o, s_digest);
    Py_DECREF(o);
    if (d != NULL && (!PyBytes_Check(d) || PyBytes_GET_SIZE(d) != 32)) {
        Py_DECREF(d);
        PyErr_SetString(PyExc_ValueError, "not a SHA-256 digest");
        return NULL;
    }
    return d;
}

/* MacKey.check(data, body_len, tlen): 1 match, 0 not, -1 error. */
static int
mac_check(PyObject *mac, const char *p, Py_ssize_t body_len, Py_ssize_t tlen)
{
    PyObject *h0, *h, *body, *r, *d;
    const unsigned char *dd, *tag = (const unsigned char *)p + body_len;
    unsigned char diff = 0;
    Py_ssize_t j;

    if (tlen > 32) {
        PyErr_SetString(PyExc_ValueError, "tag longer than the digest");
        return -1;
    }
    h0 = PyObject_GetAttr(mac, s_inner);
    if (h0 == NULL)
        return -1;
    h = PyObject_CallMethodNoArgs(h0, s_copy);
    Py_DECREF(h0);
    if (h == NULL)
        return -1;
    body = PyBytes_FromStringAndSize(p, body_len);
    if (body == NULL) {
        Py_DECREF(h);
        return -1;
    }
    r = PyObject_CallMethodOneArg(h, s_update, body);
    Py_DECREF(body);
    if (r == NULL) {
        Py_DECREF(h);
        return -1;
    }
    Py_DECREF(r);
    d = mac_finish(mac, h);
    Py_DECREF(h);
    if (d == NULL)
        return -1;
    dd = (const unsigned char *)PyBytes_AS_STRING(d);
    for (j = 0; j < tlen; j++)  /* constant time, as hmac.compare_digest */
        diff |= dd[j] ^ tag[j];
    Py_DECREF(d);
    return diff == 0;
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

/* Steal-all helper: a tuple of n new references; on any NULL, release the rest. */
static PyObject *
tuple_steal(Py_ssize_t n, PyObject **items)
{
    PyObject *t;
    Py_ssize_t j;

    for (j = 0; j < n; j++) {
        if (items[j] == NULL) {
            for (j = 0; j < n; j++)
                Py_XDECREF(items[j]);
            return NULL;
        }
    }
    t = PyTuple_New(n);
    if (t == NULL) {
        for (j = 0; j < n; j++)
            Py_DECREF(items[j]);
        return NULL;
    }
    for (j = 0; j < n; j++)
        PyTuple_SET_ITEM(t, j, items[j]);
    return t;
}

/* accept_run(datagrams, start, ctx) -> (next, accepted)
 *
 * Accepts datagrams[start:] in order while each is a steady-state frame and returns the
 * index of the first one that is not (len(datagrams) when all were), left untouched for
 * the general path. ctx = (by_id, windows, tag_len, now, latest_end, oldest_end_ms,
 * now_ms, epoch, slot_seconds, frames, values, pending, acks, peers, peer_of), as in
 * Ingest.verify; tag_len is a tuple of 8 (tag length or None by algorithm). */
static PyObject *
accept_run(PyObject *self, PyObject *args)
{
    PyObject *dl, *ctx, *by_id, *windows, *tag_len, *now_obj, *frames, *values, *pending,
        *acks, *peers, *peer_of;
    Py_ssize_t start, n, i, accepted = 0;
    double latest_end;
    long long oldest_end_ms, now_ms, epoch, slot_s;

    if (!PyArg_ParseTuple(args, "O!nO!", &PyList_Type, &dl, &start, &PyTuple_Type, &ctx))
        return NULL;
    if (!PyArg_ParseTuple(ctx, "O!O!O!OdLLLLO!O!O!O!O!O", &PyDict_Type, &by_id, &PyDict_Type,
                          &windows, &PyTuple_Type, &tag_len, &now_obj, &latest_end,
                          &oldest_end_ms, &now_ms, &epoch, &slot_s, &PyList_Type, &frames,
                          &PyList_Type, &values, &PyDict_Type, &pending, &PyDict_Type, &acks,
                          &PyDict_Type, &peers, &peer_of))
        return NULL;
    if (PyTuple_GET_SIZE(tag_len) != 8) {
        PyErr_SetString(PyExc_ValueError, "tag_len must have 8 entries");
        return NULL;
    }
    n = PyList_GET_SIZE(dl);
    for (i = start < 0 ? 0 : start; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(dl, i), *data, *addr, *tl, *dev = NULL, *kid = NULL,
            *seq = NULL, *key, *entry, *win, *top, *mac = NULL, *r, *peer, *row, *f[9];
        const char *p;
        Py_ssize_t len, tlen;
        long long end, end_ms;
        Short s;
        int ok;

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
        tl = PyTuple_GET_ITEM(tag_len, s.kid & 7);
        if (tl == Py_None)
            break;
        tlen = PyLong_AsSsize_t(tl);
        if (tlen < 0 && PyErr_Occurred())
            return NULL;
        if (len - s.body_len != tlen)
            break;
        /* slot <= 2**32 - 1: end and end_ms stay far inside 64 bits */
        end = epoch + ((long long)s.slot + 1) * slot_s;
        end_ms = end * 1000;
        if (!((double)end <= latest_end) || end_ms < oldest_end_ms)
            break;
        dev = PyLong_FromUnsignedLongLong(s.dev);
        kid = PyLong_FromUnsignedLongLong(s.kid);
        seq = PyLong_FromUnsignedLongLong(s.seq);
        if (dev == NULL || kid == NULL || seq == NULL)
            goto error;
        key = PyTuple_Pack(2, dev, kid);
        if (key == NULL)
            goto error;
        entry = PyDict_GetItemWithError(by_id, key);  /* borrowed */
        Py_DECREF(key);
        if (entry == NULL) {
            if (PyErr_Occurred())
                goto error;
            goto stop;
        }
        win = PyDict_GetItemWithError(windows, dev);  /* borrowed */
        if (win == NULL) {
            if (PyErr_Occurred())
                goto error;
            goto stop;
        }
        top = PyObject_GetAttr(win, s_top);
        if (top == NULL)
            goto error;
        ok = PyObject_RichCompareBool(seq, top, Py_GT);
        Py_DECREF(top);
        if (ok < 0)
            goto error;
        if (!ok)
            goto stop;
        r = PyObject_CallMethodOneArg(entry, s_valid_at, now_obj);
        if (r == NULL)
            goto error;
        ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (ok < 0)
            goto error;
        if (!ok)
            goto stop;
        mac = PyObject_GetAttr(entry, s_mac);
        if (mac == NULL)
            goto error;
        ok = mac_check(mac, p, s.body_len, tlen);
        if (ok < 0)
            goto error;
        if (!ok)
            goto stop;

        /* accepted: the same effects, in the same order, as the Python fast path */
        r = PyObject_CallMethodOneArg(win, s_mark, seq);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
        key = PyTuple_Pack(2, dev, seq);
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
            r = PyObject_CallOneArg(peer_of, addr);
            if (r == NULL)
                goto error;
            ok = PyDict_SetItem(peers, addr, r);
            Py_DECREF(r);  /* the dict holds it */
            if (ok < 0)
                goto error;
            peer = r;
        }
        /* signed 64-bit as stored (two's complement, store.s64) */
        f[0] = PyLong_FromLongLong((long long)(int64_t)s.dev);
        f[1] = PyLong_FromLongLong((long long)(int64_t)s.seq);
        Py_INCREF(kid);
        f[2] = kid;
        f[3] = PyLong_FromUnsignedLongLong(s.status);
        f[4] = PyLong_FromLong(1);
        f[5] = PyLong_FromLongLong(now_ms);
        Py_INCREF(peer);
        f[6] = peer;
        Py_INCREF(data);
        f[7] = data;
        row = tuple_steal(8, f);
        if (row == NULL)
            goto error;
        ok = PyList_Append(frames, row);
        Py_DECREF(row);
        if (ok < 0)
            goto error;
        f[0] = PyLong_FromLongLong((long long)(int64_t)s.dev);
        f[1] = PyLong_FromUnsignedLongLong(s.slot);
        f[2] = PyLong_FromUnsignedLongLong(s.imp);
        f[3] = PyLong_FromUnsignedLongLong(s.exp);
        f[4] = PyLong_FromUnsignedLongLong(s.flags);
        f[5] = PyLong_FromUnsignedLongLong(s.status);
        f[6] = PyLong_FromLongLong((long long)(int64_t)s.seq);
        f[7] = PyLong_FromLongLong(now_ms);
        f[8] = PyLong_FromLongLong(now_ms - end_ms);
        row = tuple_steal(9, f);
        if (row == NULL)
            goto error;
        ok = PyList_Append(values, row);
        Py_DECREF(row);
        if (ok < 0)
            goto error;
        if (add_ack(acks, addr, dev, kid, mac, seq) < 0)
            goto error;
        accepted++;
        Py_DECREF(dev);
        Py_DECREF(kid);
        Py_DECREF(seq);
        Py_DECREF(mac);
        continue;
    stop:
        Py_DECREF(dev);
        Py_DECREF(kid);
        Py_DECREF(seq);
        Py_XDECREF(mac);
        break;
    error:
        Py_XDECREF(dev);
        Py_XDECREF(kid);
        Py_XDECREF(seq);
        Py_XDECREF(mac);
        return NULL;
    }
    return Py_BuildValue("(nn)", i, accepted);
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

/* MacKey.ack_one(dev, kid, seq) from the key's cached prefix state; the Python method
 * itself when the cache is not (yet) for this device and kid. */
static PyObject *
ack_one_c(PyObject *mac, PyObject *dev, PyObject *kid, PyObject *seq)
{
    PyObject *a, *prefix, *h, *u, *d, *out, *r;
    unsigned long long sv;
    unsigned char ub[9];
    Py_ssize_t ulen, plen, tlen;
    char *q;
    int same;

    a = PyObject_GetAttr(mac, s_ack);
    if (a == NULL)
        return NULL;
    same = PyTuple_CheckExact(a) && PyTuple_GET_SIZE(a) == 5;
    if (same) {
        same = PyObject_RichCompareBool(PyTuple_GET_ITEM(a, 0), dev, Py_EQ);
        if (same > 0)
            same = PyObject_RichCompareBool(PyTuple_GET_ITEM(a, 1), kid, Py_EQ);
        if (same < 0) {
            Py_DECREF(a);
            return NULL;
        }
    }
    sv = PyLong_AsUnsignedLongLong(seq);
    if (sv == (unsigned long long)-1 && PyErr_Occurred()) {
        Py_DECREF(a);
        return NULL;
    }
    if (!same || !PyBytes_CheckExact(PyTuple_GET_ITEM(a, 2))) {
        Py_DECREF(a);
        return PyObject_CallMethodObjArgs(mac, s_ack_one, dev, kid, seq, NULL);
    }
    prefix = PyTuple_GET_ITEM(a, 2);
    h = PyTuple_GET_ITEM(a, 3);
    tlen = PyLong_AsSsize_t(PyTuple_GET_ITEM(a, 4));
    if (tlen < 0) {
        Py_DECREF(a);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "negative tag length");
        return NULL;
    }
    ulen = cbor_uint(sv, ub);
    u = PyBytes_FromStringAndSize((const char *)ub, ulen);
    h = PyObject_CallMethodNoArgs(h, s_copy);
    if (u == NULL || h == NULL)
        goto fail;
    r = PyObject_CallMethodOneArg(h, s_update, u);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    d = mac_finish(mac, h);
    if (d == NULL)
        goto fail;
    if (tlen > 32) {
        Py_DECREF(d);
        PyErr_SetString(PyExc_ValueError, "tag longer than the digest");
        goto fail;
    }
    plen = PyBytes_GET_SIZE(prefix);
    out = PyBytes_FromStringAndSize(NULL, plen + ulen + tlen);
    if (out != NULL) {
        q = PyBytes_AS_STRING(out);
        memcpy(q, PyBytes_AS_STRING(prefix), plen);
        memcpy(q + plen, ub, ulen);
        memcpy(q + plen + ulen, PyBytes_AS_STRING(d), tlen);
    }
    Py_DECREF(d);
    Py_DECREF(u);
    Py_DECREF(h);
    Py_DECREF(a);
    return out;
fail:
    Py_XDECREF(u);
    Py_XDECREF(h);
    Py_DECREF(a);
    return NULL;
}

/* acks_out(acks, out, multi): for each acks item of Ingest.verify, appends (addr, ack) to
 * out, the one-seq ack computed here; multi(addr, dev, kid, mac, seqs) returns the list of
 * (addr, ack) for a device with several seqs in the batch. Returns None. */
static PyObject *
acks_out(PyObject *self, PyObject *args)
{
    PyObject *acks, *out, *multi, *key, *val, *ack, *pair, *r;
    Py_ssize_t pos = 0;
    int rc;

    if (!PyArg_ParseTuple(args, "O!O!O", &PyDict_Type, &acks, &PyList_Type, &out, &multi))
        return NULL;
    while (PyDict_Next(acks, &pos, &key, &val)) {
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 3
            || !PyTuple_CheckExact(val) || PyTuple_GET_SIZE(val) != 2) {
            PyErr_SetString(PyExc_TypeError, "acks: (addr, dev, kid) -> (mac, seqs)");
            return NULL;
        }
        if (PyLong_CheckExact(PyTuple_GET_ITEM(val, 1))) {
            ack = ack_one_c(PyTuple_GET_ITEM(val, 0), PyTuple_GET_ITEM(key, 1),
                            PyTuple_GET_ITEM(key, 2), PyTuple_GET_ITEM(val, 1));
            if (ack == NULL)
                return NULL;
            pair = PyTuple_Pack(2, PyTuple_GET_ITEM(key, 0), ack);
            Py_DECREF(ack);
            if (pair == NULL)
                return NULL;
            rc = PyList_Append(out, pair);
            Py_DECREF(pair);
            if (rc < 0)
                return NULL;
            continue;
        }
        r = PyObject_CallFunctionObjArgs(multi, PyTuple_GET_ITEM(key, 0), PyTuple_GET_ITEM(key, 1),
                                         PyTuple_GET_ITEM(key, 2), PyTuple_GET_ITEM(val, 0),
                                         PyTuple_GET_ITEM(val, 1), NULL);
        if (r == NULL)
            return NULL;
        rc = PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, r);  /* out.extend(r) */
        Py_DECREF(r);
        if (rc < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"parse_short", parse_short, METH_O,
     "parse_short(data) -> (kid, dev, seq, status, slot, imp, exp, flags, body_len) or None"},
    {"accept_run", accept_run, METH_VARARGS,
     "accept_run(datagrams, start, ctx) -> (next, accepted); see Ingest.verify"},
    {"acks_out", acks_out, METH_VARARGS, "acks_out(acks, out, multi); see Ingest.verify"},
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
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(s_top, "top");
    INTERN(s_mark, "mark");
    INTERN(s_valid_at, "valid_at");
    INTERN(s_mac, "mac");
    INTERN(s_inner, "_inner");
    INTERN(s_outer, "_outer");
    INTERN(s_ack, "_ack");
    INTERN(s_ack_one, "ack_one");
    INTERN(s_copy, "copy");
    INTERN(s_update, "update");
    INTERN(s_digest, "digest");
#undef INTERN
    return PyModule_Create(&module);
}
