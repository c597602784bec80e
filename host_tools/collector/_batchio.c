/* The collector server's datagram I/O in batches (optional accelerator of server.py, Linux).
 *
 * Python reads one datagram per recvfrom and sends one ack per sendto: a system call, a
 * bytes object, an address tuple and the interpreter's dispatch for each. recvmmsg(2) and
 * sendmmsg(2) move up to BATCH datagrams per system call instead. Every datagram is read
 * whole (BATCH buffers of the largest UDP payload), so a rejection's raw_len stays its true
 * length. Addresses are the tuples Python's socket module gives: (host, port) for IPv4,
 * (host, port, flowinfo, scope_id) for IPv6, host as getnameinfo(NI_NUMERICHOST) writes it.
 * tests/host/test_collector_server.py checks both against the plain socket calls.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM 65536

static unsigned char bufs[BATCH][DGRAM];
static struct sockaddr_storage addrs[BATCH];
static struct iovec iovs[BATCH];
static struct mmsghdr msgs[BATCH];

static PyObject *
addr_tuple(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[NI_MAXHOST];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, NULL, 0,
                        NI_NUMERICHOST) != 0) {
            PyErr_SetString(PyExc_OSError, "getnameinfo failed");
            return NULL;
        }
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

/* recv_batch(fd, max_n) -> [(bytes, addr)], at most max_n, [] when nothing is waiting. */
static PyObject *
recv_batch(PyObject *self, PyObject *args)
{
    int fd, n, i;
    Py_ssize_t max_n, want;
    PyObject *out, *data, *addr, *pair;

    if (!PyArg_ParseTuple(args, "in", &fd, &max_n))
        return NULL;
    out = PyList_New(0);
    if (out == NULL)
        return NULL;
    while (PyList_GET_SIZE(out) < max_n) {
        want = max_n - PyList_GET_SIZE(out);
        if (want > BATCH)
            want = BATCH;
        for (i = 0; i < want; i++) {
            iovs[i].iov_base = bufs[i];
            iovs[i].iov_len = DGRAM;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(fd, msgs, (unsigned int)want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            if (PyList_GET_SIZE(out) > 0)
                break;  /* keep what was read (e.g. an ICMP error about an earlier ack) */
            Py_DECREF(out);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        for (i = 0; i < n; i++) {
            data = PyBytes_FromStringAndSize((const char *)bufs[i], msgs[i].msg_len);
            addr = addr_tuple(&addrs[i], msgs[i].msg_hdr.msg_namelen);
            if (data == NULL || addr == NULL) {
                Py_XDECREF(data);
                Py_XDECREF(addr);
                Py_DECREF(out);
                return NULL;
            }
            pair = PyTuple_Pack(2, data, addr);
            Py_DECREF(data);
            Py_DECREF(addr);
            if (pair == NULL || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(pair);
        }
        if (n < want)
            break;
    }
    return out;
}

/* The sockaddr of a Python address tuple; 0 if it is not a numeric IPv4/IPv6 address. */
static int
parse_addr(PyObject *t, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *host;
    int port;
    unsigned int flow = 0, scope = 0;

    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 2 || !PyUnicode_Check(PyTuple_GET_ITEM(t, 0)))
        return 0;
    host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(t, 0));
    port = (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
    if (host == NULL || PyErr_Occurred() || port < 0 || port > 65535) {
        PyErr_Clear();
        return 0;
    }
    memset(ss, 0, sizeof *ss);
    if (PyTuple_GET_SIZE(t) == 2) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return 0;
        a->sin_family = AF_INET;
        a->sin_port = htons((unsigned short)port);
        *len = sizeof *a;
        return 1;
    }
    if (PyTuple_GET_SIZE(t) == 4) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        flow = (unsigned int)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(t, 2));
        scope = (unsigned int)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(t, 3));
        if (PyErr_Occurred() || inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            PyErr_Clear();
            return 0;
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)port);
        a->sin6_flowinfo = htonl(flow);
        a->sin6_scope_id = scope;
        *len = sizeof *a;
        return 1;
    }
    return 0;
}

/* send_batch(fd, replies) -> [(index, errno)] of the replies not sent; replies is a list
 * of (addr, bytes). errno 0: an address this module cannot convert (the caller sends it
 * with sock.sendto). */
static PyObject *
send_batch(PyObject *self, PyObject *args)
{
    int fd, n, k;
    Py_ssize_t total, i, start, idx[BATCH];
    PyObject *replies, *item, *data, *failed, *f;
    socklen_t alen;

    if (!PyArg_ParseTuple(args, "iO!", &fd, &PyList_Type, &replies))
        return NULL;
    failed = PyList_New(0);
    if (failed == NULL)
        return NULL;
    total = PyList_GET_SIZE(replies);
    i = 0;
    while (i < total) {
        k = 0;
        while (i < total && k < BATCH) {
            item = PyList_GET_ITEM(replies, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2
                || !PyBytes_Check(PyTuple_GET_ITEM(item, 1))
                || !parse_addr(PyTuple_GET_ITEM(item, 0), &addrs[k], &alen)) {
                f = Py_BuildValue("(ni)", i, 0);
                if (f == NULL || PyList_Append(failed, f) < 0)
                    goto fail_f;
                Py_DECREF(f);
                i++;
                continue;
            }
            data = PyTuple_GET_ITEM(item, 1);
            iovs[k].iov_base = PyBytes_AS_STRING(data);
            iovs[k].iov_len = (size_t)PyBytes_GET_SIZE(data);
            memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
            msgs[k].msg_hdr.msg_name = &addrs[k];
            msgs[k].msg_hdr.msg_namelen = alen;
            msgs[k].msg_hdr.msg_iov = &iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
            idx[k] = i;
            k++;
            i++;
        }
        start = 0;
        while (start < k) {
            n = sendmmsg(fd, msgs + start, (unsigned int)(k - start), MSG_DONTWAIT);
            if (n < 0) {  /* the message at `start` failed: note it, go on with the rest */
                if (errno == EINTR)
                    continue;
                f = Py_BuildValue("(ni)", idx[start], errno);
                if (f == NULL || PyList_Append(failed, f) < 0)
                    goto fail_f;
                Py_DECREF(f);
                start++;
                continue;
            }
            start += n;
        }
    }
    return failed;
fail_f:
    Py_XDECREF(f);
    Py_DECREF(failed);
    return NULL;
}

/* ---------------------------------------------------------------- Receiver
 *
 * Receiver(fd, notify_fd, limit): a thread of its own, started at once, that never takes the
 * GIL: it waits for the socket with poll(2), reads with recvmmsg(2) into its own buffers and
 * queues a copy of each datagram (whole, with its sender's address) in C memory. The kernel
 * buffer then only has to absorb the moment between two reads, however long the server
 * holds the GIL to verify and commit a batch (a Python drain thread needed the GIL for every
 * datagram it queued, and at 50,000 datagrams/s under load it fell behind: kernel drops).
 * Beyond `limit` queued datagrams it stops reading (the kernel buffer fills, its drops are
 * counted by the kernel). When the queue turns non-empty it writes one byte to notify_fd.
 * take(n) hands the oldest n to Python as [(bytes, addr)], stop() ends the thread; len() is
 * the number queued; recv_errors counts failed reads (e.g. an ICMP error about an ack). */

typedef struct qnode {
    struct qnode *next;
    struct sockaddr_storage addr;
    socklen_t alen;
    Py_ssize_t len;
    unsigned char data[];
} qnode;

typedef struct {
    PyObject_HEAD
    int fd, notify_fd, stop_r, stop_w, running;
    pthread_t thread;
    pthread_mutex_t mu;
    qnode *head, *tail;
    Py_ssize_t count, limit;
    int signalled;
    unsigned long long recv_errors;
    unsigned char *bufs;
    struct sockaddr_storage *raddrs;
    struct iovec *riovs;
    struct mmsghdr *rmsgs;
    struct sockaddr_storage last_addr;  /* take(): consecutive datagrams of one peer share */
    socklen_t last_alen;                /* one address tuple */
    PyObject *last_tuple;
} Receiver;

static void *
receiver_loop(void *arg)
{
    Receiver *r = (Receiver *)arg;
    struct pollfd p[2];
    int n, i, notify;
    Py_ssize_t count;
    qnode *first, *last, *q;

#ifdef __linux__
    pthread_setname_np(pthread_self(), "collect-recv");  /* as `top -H` shows it */
#endif
    for (;;) {
        pthread_mutex_lock(&r->mu);
        count = r->count;
        pthread_mutex_unlock(&r->mu);
        p[0].fd = r->fd;
        p[0].events = count < r->limit ? POLLIN : 0;  /* full: wait for take() or stop */
        p[1].fd = r->stop_r;
        p[1].events = POLLIN;
        p[0].revents = p[1].revents = 0;
        if (poll(p, 2, count < r->limit ? -1 : 1) < 0) {
            if (errno == EINTR)
                continue;
            r->recv_errors++;
            continue;
        }
        if (p[1].revents)
            return NULL;
        while (count < r->limit) {
            for (i = 0; i < BATCH; i++) {
                r->riovs[i].iov_base = r->bufs + (size_t)i * DGRAM;
                r->riovs[i].iov_len = DGRAM;
                memset(&r->rmsgs[i].msg_hdr, 0, sizeof r->rmsgs[i].msg_hdr);
                r->rmsgs[i].msg_hdr.msg_name = &r->raddrs[i];
                r->rmsgs[i].msg_hdr.msg_namelen = sizeof r->raddrs[i];
                r->rmsgs[i].msg_hdr.msg_iov = &r->riovs[i];
                r->rmsgs[i].msg_hdr.msg_iovlen = 1;
            }
            n = recvmmsg(r->fd, r->rmsgs, BATCH, MSG_DONTWAIT, NULL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    r->recv_errors++;
                break;
            }
            first = last = NULL;
            for (i = 0; i < n; i++) {
                q = malloc(sizeof *q + r->rmsgs[i].msg_len);
                if (q == NULL) {  /* out of memory: this datagram is lost like a kernel drop */
                    r->recv_errors++;
                    continue;
                }
                q->next = NULL;
                q->alen = r->rmsgs[i].msg_hdr.msg_namelen;
                memcpy(&q->addr, &r->raddrs[i], sizeof q->addr);
                q->len = r->rmsgs[i].msg_len;
                memcpy(q->data, r->riovs[i].iov_base, r->rmsgs[i].msg_len);
                if (last == NULL)
                    first = q;
                else
                    last->next = q;
                last = q;
            }
            if (first != NULL) {
                pthread_mutex_lock(&r->mu);
                if (r->tail == NULL)
                    r->head = first;
                else
                    r->tail->next = first;
                r->tail = last;
                for (q = first; q != NULL; q = q->next)
                    r->count++;
                count = r->count;
                notify = !r->signalled;
                r->signalled = 1;
                pthread_mutex_unlock(&r->mu);
                if (notify && write(r->notify_fd, "", 1) < 0)
                    r->recv_errors++;
            }
            if (n < BATCH)
                break;
        }
    }
}

static void
receiver_free_queue(Receiver *r)
{
    qnode *q;

    while (r->head != NULL) {
        q = r->head;
        r->head = q->next;
        free(q);
    }
    r->tail = NULL;
    r->count = 0;
}

static int
receiver_join(Receiver *r)
{
    int rc = 0;

    if (!r->running)
        return 0;
    if (write(r->stop_w, "", 1) < 0)
        rc = -1;
    Py_BEGIN_ALLOW_THREADS
    pthread_join(r->thread, NULL);
    Py_END_ALLOW_THREADS
    r->running = 0;
    close(r->stop_r);
    close(r->stop_w);
    return rc;
}

static void
Receiver_dealloc(Receiver *r)
{
    receiver_join(r);
    receiver_free_queue(r);
    pthread_mutex_destroy(&r->mu);
    free(r->bufs);
    free(r->raddrs);
    free(r->riovs);
    free(r->rmsgs);
    Py_XDECREF(r->last_tuple);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int
Receiver_init(Receiver *r, PyObject *args, PyObject *kw)
{
    static char *names[] = {"fd", "notify_fd", "limit", NULL};
    int fds[2];

    if (r->running) {
        PyErr_SetString(PyExc_RuntimeError, "Receiver already started");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iin", names, &r->fd, &r->notify_fd, &r->limit))
        return -1;
    if (r->limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 1");
        return -1;
    }
    r->bufs = malloc((size_t)BATCH * DGRAM);
    r->raddrs = calloc(BATCH, sizeof *r->raddrs);
    r->riovs = calloc(BATCH, sizeof *r->riovs);
    r->rmsgs = calloc(BATCH, sizeof *r->rmsgs);
    if (r->bufs == NULL || r->raddrs == NULL || r->riovs == NULL || r->rmsgs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (pthread_mutex_init(&r->mu, NULL) != 0 || pipe(fds) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    r->stop_r = fds[0];
    r->stop_w = fds[1];
    if (pthread_create(&r->thread, NULL, receiver_loop, r) != 0) {
        close(fds[0]);
        close(fds[1]);
        PyErr_SetString(PyExc_OSError, "cannot start the receiver thread");
        return -1;
    }
    r->running = 1;
    return 0;
}

static PyObject *
Receiver_take(Receiver *r, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), k = 0, i;
    qnode *first, *q, *next;
    PyObject *out, *data, *addr, *pair;

    if (n < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    r->signalled = 0;
    first = r->head;
    q = NULL;
    for (next = r->head; next != NULL && k < n; next = next->next) {
        q = next;
        k++;
    }
    if (k > 0) {
        r->head = q->next;
        if (r->head == NULL)
            r->tail = NULL;
        q->next = NULL;
        r->count -= k;
    }
    pthread_mutex_unlock(&r->mu);
    out = PyList_New(k);
    i = 0;
    for (q = first; i < k; q = next, i++) {
        next = q->next;
        if (out != NULL) {
            data = PyBytes_FromStringAndSize((const char *)q->data, q->len);
            if (r->last_tuple != NULL && q->alen == r->last_alen
                && memcmp(&q->addr, &r->last_addr, q->alen) == 0) {
                addr = r->last_tuple;
                Py_INCREF(addr);
            }
            else {
                addr = addr_tuple(&q->addr, q->alen);
                if (addr != NULL) {
                    Py_XSETREF(r->last_tuple, addr);
                    Py_INCREF(addr);
                    memcpy(&r->last_addr, &q->addr, q->alen);
                    r->last_alen = q->alen;
                }
            }
            pair = (data != NULL && addr != NULL) ? PyTuple_Pack(2, data, addr) : NULL;
            Py_XDECREF(data);
            Py_XDECREF(addr);
            if (pair == NULL)
                Py_CLEAR(out);  /* the rest is freed; the error propagates */
            else
                PyList_SET_ITEM(out, i, pair);
        }
        free(q);
    }
    return out;
}

static PyObject *
Receiver_stop(Receiver *r, PyObject *unused)
{
    if (receiver_join(r) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static Py_ssize_t
Receiver_len(Receiver *r)
{
    Py_ssize_t n;

    pthread_mutex_lock(&r->mu);
    n = r->count;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static PyObject *
Receiver_get_errors(Receiver *r, void *closure)
{
    return PyLong_FromUnsignedLongLong(r->recv_errors);
}

static PyMethodDef Receiver_methods[] = {
    {"take", (PyCFunction)Receiver_take, METH_O,
     "take(n) -> [(bytes, addr)]: the oldest n queued datagrams (fewer if fewer wait)"},
    {"stop", (PyCFunction)Receiver_stop, METH_NOARGS,
     "stop(): end the thread (what is queued stays for take)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Receiver_getset[] = {
    {"recv_errors", (getter)Receiver_get_errors, NULL, "reads that failed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Receiver_seq = {.sq_length = (lenfunc)Receiver_len};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "host_tools.collector._batchio.Receiver",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Receiver(fd, notify_fd, limit): reads the socket on a thread without the GIL",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Receiver_init,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_methods = Receiver_methods,
    .tp_getset = Receiver_getset,
    .tp_as_sequence = &Receiver_seq,
};

static PyMethodDef methods[] = {
    {"recv_batch", recv_batch, METH_VARARGS,
     "recv_batch(fd, max_n) -> [(bytes, addr)]: the datagrams waiting, read whole"},
    {"send_batch", send_batch, METH_VARARGS,
     "send_batch(fd, [(addr, bytes)]) -> [(index, errno)] of those not sent (errno 0: "
     "address not convertible here)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_batchio",
    "recvmmsg/sendmmsg for the collector server (host_tools/collector/server.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__batchio(void)
{
    PyObject *m;

    if (PyType_Ready(&ReceiverType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReceiverType);
    if (PyModule_AddObject(m, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(&ReceiverType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
