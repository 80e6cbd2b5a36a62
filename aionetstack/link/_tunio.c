/* The TUN's per-packet system calls without Python's cost for an empty queue:
 * link/tun_io.py's read_packet_python and write_packet_python, the references, do
 * the same through os.readv and os.writev. A read of an empty non-blocking TUN fails
 * with EAGAIN, and every read that ends a batch does: through io.FileIO or os, that
 * failure builds an OSError (its message decoded from strerror) only to be dropped,
 * about a third of the cost of the read. Here it is a None.
 *
 * read_packet(fd, buffer) -> int | None: one read(2) into the writable buffer; the
 * byte count, or None when the queue is empty (EAGAIN/EWOULDBLOCK). OSError with
 * the errno for any other failure; EINTR is retried.
 *
 * write_packet(fd, head, packet, tail) -> int: one writev(2) of head (a buffer, or
 * None for nothing), packet, then each buffer of the tuple tail; the bytes written
 * less head's length. OSError with the errno on failure (BlockingIOError for a full
 * queue, as os.writev); EINTR is retried.
 *
 * write_offloaded(fd, packet, segment_size, tail, link_header) -> int: write_packet
 * behind the virtio_net_hdr (virtio spec 1.2 §5.1.6, the 10-byte legacy layout) that
 * asks the kernel to complete the TCP or UDP checksum of packet, an IP packet after
 * link_header bytes of link framing (0 on a TUN, 14 on a TAP), and with segment_size > 0
 * to cut its TCP payload into segments of that size. The header is built from the
 * packet's own IP and transport headers, which packet must hold (tail: the payload).
 * ValueError for a packet the device cannot complete (not IPv4 or IPv6, neither TCP
 * nor UDP, UDP to be cut, too short). link/tun_io.py's write_offloaded_python is the
 * reference (tun_io.offload_header, then write_packet_python).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

/* Buffers one write gathers without allocating: head, packet and the tail's views (a
 * TSO segment spans a few of the send buffer's chunks). More are allocated; past
 * IOV_MAX (1024 on Linux) writev fails with EINVAL, as os.writev does. */
#define LOCAL_PARTS 64

/* A file descriptor argument: -1 with an exception set when it is not one. */
static int
fd_of(PyObject *value)
{
    long fd = PyLong_AsLong(value);
    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fd must be a non-negative int");
        return -1;
    }
    return (int)fd;
}

static PyObject *
read_packet(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_packet(fd, buffer) takes 2 arguments");
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0) {
        return NULL;
    }
    Py_buffer buffer;
    if (PyObject_GetBuffer(args[1], &buffer, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    ssize_t size;
    do {
        size = read(fd, buffer.buf, (size_t)buffer.len);
    } while (size < 0 && errno == EINTR);
    int error = errno;
    PyBuffer_Release(&buffer);
    if (size >= 0) {
        return PyLong_FromSsize_t(size);
    }
    if (error == EAGAIN || error == EWOULDBLOCK) {
        Py_RETURN_NONE;
    }
    errno = error;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* One writev(2) of head (head_length bytes; none when 0), packet, then tail's buffers:
 * the bytes written less head_length, or NULL with OSError set. */
static PyObject *
gather_write(int fd, const void *head, Py_ssize_t head_length, PyObject *packet,
             PyObject *tail)
{
    if (!PyTuple_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "tail must be a tuple");
        return NULL;
    }
    Py_ssize_t first = head_length > 0 ? 1 : 0; /* iovec index of packet */
    Py_ssize_t buffers = PyTuple_GET_SIZE(tail) + 1; /* Python buffers: packet, tail */
    Py_ssize_t parts = buffers + first;
    Py_buffer local_views[LOCAL_PARTS];
    struct iovec local_vectors[LOCAL_PARTS];
    Py_buffer *views = local_views;
    struct iovec *vectors = local_vectors;
    if (parts > LOCAL_PARTS) {
        if (parts > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "write_packet(): too many buffers");
            return NULL;
        }
        views = PyMem_New(Py_buffer, (size_t)buffers);
        vectors = PyMem_New(struct iovec, (size_t)parts);
        if (views == NULL || vectors == NULL) {
            PyMem_Free(views);
            PyMem_Free(vectors);
            return PyErr_NoMemory();
        }
    }
    if (first) {
        vectors[0].iov_base = (void *)head;
        vectors[0].iov_len = (size_t)head_length;
    }
    Py_ssize_t taken = 0;
    PyObject *result = NULL;
    for (Py_ssize_t index = 0; index < buffers; index++) {
        PyObject *item = index == 0 ? packet : PyTuple_GET_ITEM(tail, index - 1);
        if (PyObject_GetBuffer(item, &views[index], PyBUF_SIMPLE) < 0) {
            goto done;
        }
        taken++;
        vectors[first + index].iov_base = views[index].buf;
        vectors[first + index].iov_len = (size_t)views[index].len;
    }
    ssize_t written;
    do {
        written = writev(fd, vectors, (int)parts);
    } while (written < 0 && errno == EINTR);
    if (written < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = PyLong_FromSsize_t(written - head_length);
done:
    for (Py_ssize_t index = 0; index < taken; index++) {
        PyBuffer_Release(&views[index]);
    }
    if (views != local_views) {
        PyMem_Free(views);
        PyMem_Free(vectors);
    }
    return result;
}

static PyObject *
write_packet(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "write_packet(fd, head, packet, tail) takes 4 arguments");
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0) {
        return NULL;
    }
    if (args[1] == Py_None) {
        return gather_write(fd, NULL, 0, args[2], args[3]);
    }
    Py_buffer head;
    if (PyObject_GetBuffer(args[1], &head, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = gather_write(fd, head.buf, head.len, args[2], args[3]);
    PyBuffer_Release(&head);
    return result;
}

/* virtio_net.h: flags, GSO types; the checksum fields' offsets in TCP and UDP headers
 * (RFC 9293 §3.1, RFC 768). */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VNET_HEADER_LENGTH 10
#define CSUM_OFFSET_TCP 16
#define CSUM_OFFSET_UDP 6
#define IPPROTO_TCP_NUMBER 6
#define IPPROTO_UDP_NUMBER 17
#define IPV6_HEADER_LENGTH 40

static void
put_le16(unsigned char *out, unsigned int value)
{
    out[0] = (unsigned char)(value & 0xFF);
    out[1] = (unsigned char)(value >> 8);
}

/* Fill header (10 bytes) for the IP packet at bytes[link_header:]; -1 with ValueError
 * set when the device cannot complete it. */
static int
build_offload_header(const unsigned char *bytes, Py_ssize_t length, Py_ssize_t link_header,
                     long segment_size, unsigned char *header)
{
    if (length <= link_header) {
        PyErr_SetString(PyExc_ValueError, "not an IP packet");
        return -1;
    }
    const unsigned char *ip = bytes + link_header;
    Py_ssize_t available = length - link_header;
    int version = ip[0] >> 4;
    Py_ssize_t start;
    int protocol;
    if (version == 4 && available > 9) {
        start = (Py_ssize_t)(ip[0] & 0x0F) * 4;
        protocol = ip[9];
    } else if (version == 6 && available > 6) {
        start = IPV6_HEADER_LENGTH;
        protocol = ip[6];
    } else {
        PyErr_SetString(PyExc_ValueError, "not an IP packet");
        return -1;
    }
    Py_ssize_t transport_length = 8;
    int checksum_offset;
    if (protocol == IPPROTO_TCP_NUMBER) {
        if (available <= start + 12) {
            PyErr_SetString(PyExc_ValueError, "the packet ends inside its TCP header");
            return -1;
        }
        transport_length = (Py_ssize_t)(ip[start + 12] >> 4) * 4;
        checksum_offset = CSUM_OFFSET_TCP;
    } else if (protocol == IPPROTO_UDP_NUMBER && segment_size == 0) {
        checksum_offset = CSUM_OFFSET_UDP;
    } else {
        PyErr_SetString(PyExc_ValueError, "only TCP (and unsegmented UDP) can be offloaded");
        return -1;
    }
    int gso_type = VIRTIO_NET_HDR_GSO_NONE;
    Py_ssize_t headers_length = 0;
    if (segment_size) {
        gso_type = version == 4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
        headers_length = link_header + start + transport_length;
    }
    header[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    header[1] = (unsigned char)gso_type;
    put_le16(header + 2, (unsigned int)headers_length);
    put_le16(header + 4, (unsigned int)segment_size);
    put_le16(header + 6, (unsigned int)(link_header + start));
    put_le16(header + 8, (unsigned int)checksum_offset);
    return 0;
}

static PyObject *
write_offloaded(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "write_offloaded(fd, packet, segment_size, tail, link_header) "
                        "takes 5 arguments");
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0) {
        return NULL;
    }
    long segment_size = PyLong_AsLong(args[2]);
    if (segment_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (segment_size < 0 || segment_size > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "segment_size must be in 0..65535");
        return NULL;
    }
    Py_ssize_t link_header = PyLong_AsSsize_t(args[4]);
    if (link_header == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (link_header < 0 || link_header > 0xFF) {
        PyErr_SetString(PyExc_ValueError, "link_header must be in 0..255");
        return NULL;
    }
    Py_buffer packet;
    if (PyObject_GetBuffer(args[1], &packet, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    unsigned char header[VNET_HEADER_LENGTH];
    int built = build_offload_header(packet.buf, packet.len, link_header, segment_size, header);
    PyBuffer_Release(&packet);
    if (built < 0) {
        return NULL;
    }
    return gather_write(fd, header, VNET_HEADER_LENGTH, args[1], args[3]);
}

static PyMethodDef methods[] = {
    {"read_packet", (PyCFunction)(void (*)(void))read_packet, METH_FASTCALL,
     "read_packet(fd, buffer) -> int | None: one read; None when the queue is empty."},
    {"write_packet", (PyCFunction)(void (*)(void))write_packet, METH_FASTCALL,
     "write_packet(fd, head, packet, tail) -> int: one writev; bytes written less head's."},
    {"write_offloaded", (PyCFunction)(void (*)(void))write_offloaded, METH_FASTCALL,
     "write_offloaded(fd, packet, segment_size, tail, link_header) -> int: write_packet "
     "behind the virtio_net_hdr that offloads packet's checksum (and segmentation)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* No state; the buffers are held (their length fixed while exported) for the call
     * and the tuple of tail buffers cannot change. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aionetstack.link._tunio",
    .m_doc = "The TUN's per-packet reads and writes (link/tun_io.py has the Python twins).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__tunio(void)
{
    return PyModuleDef_Init(&module_definition);
}
