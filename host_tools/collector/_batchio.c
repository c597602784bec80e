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
#include <string.h>
#include <sys/socket.h>

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
    return PyModule_Create(&module);
}
