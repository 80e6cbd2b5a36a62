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
    PyObject *head = args[1];
    PyObject *tail = args[3];
    if (!PyTuple_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "write_packet(): tail must be a tuple");
        return NULL;
    }
    Py_ssize_t parts = PyTuple_GET_SIZE(tail) + 1 + (head != Py_None);
    Py_buffer local_views[LOCAL_PARTS];
    struct iovec local_vectors[LOCAL_PARTS];
    Py_buffer *views = local_views;
    struct iovec *vectors = local_vectors;
    if (parts > LOCAL_PARTS) {
        if (parts > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "write_packet(): too many buffers");
            return NULL;
        }
        views = PyMem_New(Py_buffer, (size_t)parts);
        vectors = PyMem_New(struct iovec, (size_t)parts);
        if (views == NULL || vectors == NULL) {
            PyMem_Free(views);
            PyMem_Free(vectors);
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t taken = 0;
    Py_ssize_t head_length = 0;
    PyObject *result = NULL;
    for (Py_ssize_t index = 0; index < parts; index++) {
        PyObject *item;
        if (head != Py_None && index == 0) {
            item = head;
        } else if (index == (head != Py_None)) {
            item = args[2];
        } else {
            item = PyTuple_GET_ITEM(tail, index - 1 - (head != Py_None));
        }
        if (PyObject_GetBuffer(item, &views[index], PyBUF_SIMPLE) < 0) {
            goto done;
        }
        taken++;
        vectors[index].iov_base = views[index].buf;
        vectors[index].iov_len = (size_t)views[index].len;
    }
    if (head != Py_None) {
        head_length = views[0].len;
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

static PyMethodDef methods[] = {
    {"read_packet", (PyCFunction)(void (*)(void))read_packet, METH_FASTCALL,
     "read_packet(fd, buffer) -> int | None: one read; None when the queue is empty."},
    {"write_packet", (PyCFunction)(void (*)(void))write_packet, METH_FASTCALL,
     "write_packet(fd, head, packet, tail) -> int: one writev; bytes written less head's."},
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
