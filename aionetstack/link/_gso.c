/* Software GSO's cut in C: link/segmentation.py's cut_tcp, the reference, does the
 * same work in Python at about 3 µs a piece; this returns every piece of a
 * super-packet, whole, for a fraction of that. The rules (which fields each piece
 * gets) are in segmentation.py's module docstring, and tests/link/test_gso_native.py
 * holds the two to the same bytes.
 *
 * cut_tcp_packets(packet, segment_size, tail, offset) -> list[bytes]: packet (and
 * the buffers of the tuple tail after it) is a partial-checksum TCP packet whose IP
 * header starts at offset; each item is one piece of at most segment_size payload
 * bytes: the first offset bytes, IP and TCP headers with every field and checksum
 * filled in, then its payload. ValueError for what is not TCP in IPv4/IPv6, a
 * truncated header or a segment_size below 1.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../wire/rfc1071.h"

#define PROTO_TCP 6
#define PROTO_UDP 17
#define IPV6_HEADER_LENGTH 40
/* RFC 9293 §3.1 / RFC 3168 §6.1: the control bits the cut moves between pieces. */
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static void
put16(unsigned char *p, uint32_t value)
{
    p[0] = (unsigned char)(value >> 8);
    p[1] = (unsigned char)value;
}

/* A one's complement checksum field from a sum (congruent mod 0xFFFF): a sum that
 * folds to zero is written as 0 (both verify, RFC 1624 §3), as cut_tcp does. */
static uint32_t
checksum_field(uint64_t value)
{
    uint32_t folded = (uint32_t)(value % 0xFFFF);
    return folded ? ~folded & 0xFFFF : 0;
}

/* The TCP payload, contiguous: the packet's bytes after the headers, then tail's. */
typedef struct {
    const unsigned char *data;
    Py_ssize_t length;
    PyObject *joined; /* owns data when the payload had to be joined, else NULL */
} Payload;

static int
gather_payload(Py_buffer *packet, Py_ssize_t end, PyObject *tail, Payload *payload)
{
    Py_ssize_t parts = PyTuple_GET_SIZE(tail);
    Py_ssize_t rest = packet->len - end;
    payload->joined = NULL;
    if (parts == 0) {
        payload->data = (const unsigned char *)packet->buf + end;
        payload->length = rest;
        return 0;
    }
    Py_buffer *views = PyMem_Calloc(parts, sizeof(Py_buffer));
    if (views == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t held = 0;
    Py_ssize_t total = rest;
    int failed = 0;
    for (; held < parts; held++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tail, held), &views[held], PyBUF_SIMPLE) < 0) {
            failed = 1;
            break;
        }
        total += views[held].len;
    }
    if (!failed) {
        payload->joined = PyBytes_FromStringAndSize(NULL, total);
        failed = payload->joined == NULL;
    }
    if (!failed) {
        unsigned char *at = (unsigned char *)PyBytes_AS_STRING(payload->joined);
        memcpy(at, (const unsigned char *)packet->buf + end, rest);
        at += rest;
        for (Py_ssize_t i = 0; i < parts; i++) {
            memcpy(at, views[i].buf, views[i].len);
            at += views[i].len;
        }
        payload->data = (const unsigned char *)PyBytes_AS_STRING(payload->joined);
        payload->length = total;
    }
    for (Py_ssize_t i = 0; i < held; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
    return failed ? -1 : 0;
}

/* The pieces, given a packet already checked (cut_tcp_packets below). */
static PyObject *
cut(const unsigned char *packet, Py_ssize_t offset, Py_ssize_t ip_length, Py_ssize_t end,
    int version, const Payload *payload, Py_ssize_t segment_size)
{
    Py_ssize_t start = offset + ip_length;
    Py_ssize_t tcp_length = end - start;
    uint32_t seq0 = (uint32_t)packet[start + 4] << 24 | (uint32_t)packet[start + 5] << 16
                    | (uint32_t)packet[start + 6] << 8 | packet[start + 7];
    unsigned flags = packet[start + 13];
    uint32_t identification0 = 0;
    uint64_t ip_sum = 0;
    uint64_t pseudo;
    /* The headers with the fields that differ per piece zeroed, then summed once (RFC
     * 1071 §2: the sum is linear): sequence number, flags, checksum (TCP); length,
     * identification, checksum (IPv4); the length of the pseudo-header (RFC 9293 §3.1). */
    unsigned char *headers = PyMem_Malloc(end);
    if (headers == NULL) {
        return PyErr_NoMemory();
    }
    memcpy(headers, packet, end);
    if (version == 4) {
        pseudo = rfc1071_sum(packet + offset + 12, 8) + PROTO_TCP;
        identification0 = (uint32_t)packet[offset + 4] << 8 | packet[offset + 5];
        memset(headers + offset + 2, 0, 4);
        memset(headers + offset + 10, 0, 2);
        ip_sum = rfc1071_sum(headers + offset, ip_length);
    }
    else {
        pseudo = rfc1071_sum(packet + offset + 8, 32) + PROTO_TCP;
    }
    memset(headers + start + 4, 0, 4);
    headers[start + 13] = 0;
    memset(headers + start + 16, 0, 2);
    uint64_t fixed = pseudo + rfc1071_sum(headers + start, tcp_length);
    Py_ssize_t total = payload->length;
    /* The IPv4 total length or IPv6 payload length of the largest piece (RFC 791 §3.1,
     * RFC 8200 §3) must fit its 16 bits. */
    Py_ssize_t largest = total < segment_size ? total : segment_size;
    if ((version == 4 ? ip_length : 0) + tcp_length + largest > 0xFFFF) {
        PyMem_Free(headers);
        PyErr_SetString(PyExc_ValueError,
                        "a piece would be longer than the IP length field allows");
        return NULL;
    }
    Py_ssize_t last_start = total ? ((total - 1) / segment_size) * segment_size : 0;
    Py_ssize_t count = total ? (total - 1) / segment_size + 1 : 1;
    PyObject *pieces = PyList_New(count);
    if (pieces == NULL) {
        PyMem_Free(headers);
        return NULL;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_ssize_t position = index * segment_size;
        Py_ssize_t size = total - position < segment_size ? total - position : segment_size;
        uint32_t seq = seq0 + (uint32_t)position;
        unsigned piece_flags = flags;
        if (position != last_start) {
            piece_flags &= ~(TCP_FIN | TCP_PSH);
        }
        if (index) {
            piece_flags &= ~TCP_CWR;
        }
        Py_ssize_t segment_length = tcp_length + size;
        uint64_t value = fixed + (uint64_t)segment_length + (seq >> 16) + (seq & 0xFFFF)
                         + piece_flags + rfc1071_sum(payload->data + position, size);
        PyObject *piece = PyBytes_FromStringAndSize(NULL, end + size);
        if (piece == NULL) {
            Py_DECREF(pieces);
            PyMem_Free(headers);
            return NULL;
        }
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(piece);
        memcpy(p, headers, end);
        memcpy(p + end, payload->data + position, size);
        p[start + 4] = (unsigned char)(seq >> 24);
        p[start + 5] = (unsigned char)(seq >> 16);
        p[start + 6] = (unsigned char)(seq >> 8);
        p[start + 7] = (unsigned char)seq;
        p[start + 13] = (unsigned char)piece_flags;
        put16(p + start + 16, checksum_field(value));
        if (version == 4) {
            Py_ssize_t length = ip_length + segment_length;
            uint32_t identification = (identification0 + (uint32_t)index) & 0xFFFF;
            put16(p + offset + 2, (uint32_t)length);
            put16(p + offset + 4, identification);
            put16(p + offset + 10, checksum_field(ip_sum + (uint64_t)length + identification));
        }
        else {
            put16(p + offset + 4, (uint32_t)segment_length);
        }
        PyList_SET_ITEM(pieces, index, piece);
    }
    PyMem_Free(headers);
    return pieces;
}

static PyObject *
cut_tcp_packets(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "cut_tcp_packets() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t segment_size = PyLong_AsSsize_t(args[1]);
    Py_ssize_t offset = PyLong_AsSsize_t(args[3]);
    if ((segment_size == -1 || offset == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "tail must be a tuple of buffers");
        return NULL;
    }
    if (segment_size < 1) {
        PyErr_Format(PyExc_ValueError, "segment_size must be >= 1, got %zd", segment_size);
        return NULL;
    }
    if (offset < 0) {
        PyErr_Format(PyExc_ValueError, "offset must be >= 0, got %zd", offset);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *packet = (const unsigned char *)view.buf;
    PyObject *result = NULL;
    const char *problem = NULL;
    int version = 0;
    Py_ssize_t ip_length = 0;
    int protocol = 0;
    if (view.len <= offset) {
        problem = "packet truncated before its IP header";
        goto done;
    }
    version = packet[offset] >> 4;
    if (version == 4) {
        ip_length = (Py_ssize_t)(packet[offset] & 0x0F) * 4;
        if (ip_length < 20) {
            problem = "IPv4 header length below 20 bytes";
            goto done;
        }
        if (view.len < offset + 10) {
            problem = "IPv4 header truncated";
            goto done;
        }
        protocol = packet[offset + 9];
    }
    else if (version == 6) {
        ip_length = IPV6_HEADER_LENGTH;
        if (view.len < offset + 7) {
            problem = "IPv6 header truncated";
            goto done;
        }
        protocol = packet[offset + 6];
    }
    else {
        PyErr_Format(PyExc_ValueError, "not an IP packet (version %d)", version);
        goto done;
    }
    if (protocol != PROTO_TCP) {
        problem = protocol == PROTO_UDP
            ? "only TCP packets are cut (UDP segmentation is not offered)"
            : "cannot complete a checksum for this protocol";
        goto done;
    }
    Py_ssize_t start = offset + ip_length;
    if (view.len < start + 13) {
        problem = "TCP header truncated";
        goto done;
    }
    Py_ssize_t end = start + (Py_ssize_t)(packet[start + 12] >> 4) * 4;
    if (end - start < 20 || view.len < end) {
        problem = "TCP header truncated";
        goto done;
    }
    Payload payload;
    if (gather_payload(&view, end, args[2], &payload) < 0) {
        goto done;
    }
    result = cut(packet, offset, ip_length, end, version, &payload, segment_size);
    Py_XDECREF(payload.joined);
done:
    if (problem != NULL) {
        PyErr_SetString(PyExc_ValueError, problem);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"cut_tcp_packets", (PyCFunction)(void (*)(void))cut_tcp_packets, METH_FASTCALL,
     "cut_tcp_packets($module, packet, segment_size, tail, offset, /)\n--\n\n"
     "Software GSO (link/segmentation.py): every piece of a partial-checksum TCP\n"
     "packet, whole."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* No state; the input is held as buffers (their length fixed while exported) and
     * the tuple of tail buffers cannot change. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aionetstack.link._gso",
    .m_doc = "Software GSO's cut in C (see link/segmentation.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__gso(void)
{
    return PyModuleDef_Init(&module_definition);
}
