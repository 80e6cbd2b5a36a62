/* The receive classification of the commonest packet in C: TCP in IPv4 without IP
 * options or fragments, its checksums checked and its TCP header unpacked in one call
 * (wire/plain_tcp4.py has the contract and parse_plain_tcp4_python, the reference and
 * the fallback; tests/wire/test_plain_tcp4_native.py holds the two to one answer for
 * every packet it draws).
 *
 * bind(options_type): the class parse answers a timestamp-only option layout with
 * (wire/tcp.py's TcpOptions); called once, by plain_tcp4.py, before parse.
 *
 * parse(data, verify_header, verify_transport, destinations, refused_sources) -> None
 * or (source, destination, sport, dport, seq, ack, flags, window, options, payload).
 * None: not that packet, not to one of destinations (a set of 4-byte addresses), from
 * one of refused_sources (a set) or a martian source, or a checksum or header check
 * failed (the caller's full path then looks again and counts the drop). options: None
 * for a 20-byte TCP header; a TcpOptions holding only the timestamps for the NOP NOP
 * TS layout (RFC 7323 Appendix A); otherwise a view of the option bytes. payload: a
 * view of data, or bytes copied out of it when shorter than SMALL_PAYLOAD. data must
 * be a contiguous buffer of bytes (TypeError otherwise).
 * Nothing is kept between calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "rfc1071.h"

/* RFC 791 §3.1: version 4, IHL 5; the header's length; protocol 6 (RFC 9293). */
#define V4_NO_OPTIONS 0x45
#define IPV4_HEADER_LENGTH 20
#define PROTO_TCP 6
/* RFC 791 §3.1: the flags and fragment offset field less DF: MF and the offset. */
#define IPV4_FRAGMENT_FIELD 0x3FFF
/* RFC 9293 §3.1: the fixed TCP header; NOP NOP TS is 12 more bytes (RFC 7323). */
#define TCP_HEADER_LENGTH 20
#define TIMESTAMP_HEADER_LENGTH 32
static const unsigned char TIMESTAMP_PREFIX[4] = {1, 1, 8, 10};
/* A payload shorter than this is answered as bytes, a copy: cheaper to make than a
 * view, and the receive buffer copies one this small anyway (core/tcp/receive_buffer.py's
 * SMALL_CHUNK; wire/plain_tcp4.py's SMALL_PAYLOAD, the same). */
#define SMALL_PAYLOAD 512

/* TcpOptions' fields, in declaration order (bind checks them against __slots__). */
#define OPTION_FIELDS 5
static const char *const FIELD_NAMES[OPTION_FIELDS] = {
    "mss", "window_scale", "sack_permitted", "timestamp", "sack_blocks",
};

typedef struct {
    PyTypeObject *options_type; /* NULL until bind */
    PyObject *field_names[OPTION_FIELDS];
} ModuleState;

static inline uint32_t
be16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A tuple of count new references, each taken even when one is NULL (a failed
 * conversion, its exception set) or the tuple cannot be made: then NULL. Cheaper than
 * Py_BuildValue, which parses its format string at every call. */
static PyObject *
take_tuple(Py_ssize_t count, PyObject **items)
{
    PyObject *tuple = PyTuple_New(count);
    Py_ssize_t index;
    int complete = tuple != NULL;
    for (index = 0; index < count; index++) {
        complete = complete && items[index] != NULL;
    }
    if (!complete) {
        for (index = 0; index < count; index++) {
            Py_XDECREF(items[index]);
        }
        Py_XDECREF(tuple);
        return NULL;
    }
    for (index = 0; index < count; index++) {
        PyTuple_SET_ITEM(tuple, index, items[index]);
    }
    return tuple;
}

/* A TcpOptions holding (tsval, tsecr) and every other field at its default. */
static PyObject *
timestamp_options(ModuleState *state, uint32_t tsval, uint32_t tsecr)
{
    PyTypeObject *type = state->options_type;
    PyObject *values[OPTION_FIELDS];
    PyObject *options;
    PyObject *stamps[2] = {PyLong_FromUnsignedLong(tsval), PyLong_FromUnsignedLong(tsecr)};
    PyObject *timestamp = take_tuple(2, stamps);
    PyObject *no_blocks = PyTuple_New(0);
    int index;
    int failed = 0;
    if (timestamp == NULL || no_blocks == NULL) {
        Py_XDECREF(timestamp);
        Py_XDECREF(no_blocks);
        return NULL;
    }
    values[0] = Py_None;
    values[1] = Py_None;
    values[2] = Py_False;
    values[3] = timestamp;
    values[4] = no_blocks;
    options = type->tp_alloc(type, 0);
    for (index = 0; options != NULL && index < OPTION_FIELDS && !failed; index++) {
        failed = PyObject_GenericSetAttr(options, state->field_names[index], values[index]) < 0;
    }
    Py_DECREF(timestamp);
    Py_DECREF(no_blocks);
    if (failed) {
        Py_CLEAR(options);
    }
    return options;
}

/* data[start:stop] as a memoryview (a view of a view when data is one). */
static PyObject *
view_slice(PyObject *data, Py_ssize_t start, Py_ssize_t stop)
{
    PyObject *whole;
    PyObject *part;
    if (PyMemoryView_Check(data)) {
        return PySequence_GetSlice(data, start, stop);
    }
    whole = PyMemoryView_FromObject(data);
    if (whole == NULL) {
        return NULL;
    }
    part = PySequence_GetSlice(whole, start, stop);
    Py_DECREF(whole);
    return part;
}

/* RFC 1122 §3.2.1.3 / RFC 6890: 0/8 "this network", 127/8 loopback, 224/4 multicast
 * and 240/4 reserved are never the source of a packet we accept. */
static inline int
martian_first_octet(unsigned char octet)
{
    return octet == 0 || octet == 127 || octet >= 224;
}

/* The rules read from the IP header alone (the addresses' sets aside): 1 when they
 * hold. */
static int
plain_shape(const unsigned char *p, Py_ssize_t length)
{
    Py_ssize_t total;
    if (length < IPV4_HEADER_LENGTH + TCP_HEADER_LENGTH || p[0] != V4_NO_OPTIONS) {
        return 0;
    }
    total = (Py_ssize_t)be16(p + 2);
    return p[9] == PROTO_TCP && total >= IPV4_HEADER_LENGTH + TCP_HEADER_LENGTH
           && total <= length && !(be16(p + 6) & IPV4_FRAGMENT_FIELD) && p[8] != 0
           && !martian_first_octet(p[12]);
}

/* The checksums (as asked) and the TCP data offset of a packet of plain_shape: 1 when
 * they hold. */
static int
sound(const unsigned char *p, int verify_header, int verify_transport)
{
    Py_ssize_t total = (Py_ssize_t)be16(p + 2);
    const unsigned char *tcp = p + IPV4_HEADER_LENGTH;
    Py_ssize_t header_length = (Py_ssize_t)(tcp[12] >> 4) << 2;
    /* RFC 1071: a header with its checksum in place sums to a non-zero multiple of
     * 0xFFFF (never zero: the first byte is 0x45). */
    if (verify_header && rfc1071_sum(p, IPV4_HEADER_LENGTH) % 0xFFFF) {
        return 0;
    }
    if (verify_transport) {
        /* RFC 9293 §3.1: the pseudo-header (addresses, protocol, TCP length) and the
         * segment sum to a multiple of 0xFFFF when the checksum is right (never to 0:
         * the protocol is in it). */
        uint64_t sum = (uint64_t)be16(p + 12) + be16(p + 14) + be16(p + 16) + be16(p + 18)
                       + PROTO_TCP + (uint64_t)(total - IPV4_HEADER_LENGTH)
                       + rfc1071_sum(tcp, total - IPV4_HEADER_LENGTH);
        if (sum % 0xFFFF) {
            return 0;
        }
    }
    return header_length >= TCP_HEADER_LENGTH && header_length <= total - IPV4_HEADER_LENGTH;
}

/* The answer's tuple for a packet found sound; steals source and destination. */
static PyObject *
fields(ModuleState *state, PyObject *data, const unsigned char *p, PyObject *source,
       PyObject *destination)
{
    Py_ssize_t total = (Py_ssize_t)be16(p + 2);
    const unsigned char *tcp = p + IPV4_HEADER_LENGTH;
    Py_ssize_t header_length = (Py_ssize_t)(tcp[12] >> 4) << 2;
    Py_ssize_t payload_start = IPV4_HEADER_LENGTH + header_length;
    PyObject *options;
    PyObject *payload = NULL;
    if (header_length == TCP_HEADER_LENGTH) {
        options = Py_NewRef(Py_None);
    } else if (header_length == TIMESTAMP_HEADER_LENGTH
               && memcmp(tcp + TCP_HEADER_LENGTH, TIMESTAMP_PREFIX, 4) == 0) {
        options = timestamp_options(state, be32(tcp + 24), be32(tcp + 28));
    } else {
        options = view_slice(data, IPV4_HEADER_LENGTH + TCP_HEADER_LENGTH,
                             IPV4_HEADER_LENGTH + header_length);
    }
    if (options != NULL && total - payload_start < SMALL_PAYLOAD) {
        payload = PyBytes_FromStringAndSize((const char *)p + payload_start,
                                            total - payload_start);
    } else if (options != NULL) {
        payload = view_slice(data, payload_start, total);
    }
    if (payload == NULL) {
        Py_XDECREF(options);
        Py_DECREF(source);
        Py_DECREF(destination);
        return NULL;
    }
    {
        /* take_tuple takes each reference, even when the tuple cannot be made. */
        PyObject *fields[10] = {
            source, destination, PyLong_FromUnsignedLong(be16(tcp)),
            PyLong_FromUnsignedLong(be16(tcp + 2)), PyLong_FromUnsignedLong(be32(tcp + 4)),
            PyLong_FromUnsignedLong(be32(tcp + 8)), PyLong_FromUnsignedLong(tcp[13]),
            PyLong_FromUnsignedLong(be16(tcp + 14)), options, payload,
        };
        return take_tuple(10, fields);
    }
}

/* The fields, or Py_None when the packet is not the plain case, not ours or fails a
 * check. */
static PyObject *
classify(ModuleState *state, PyObject *data, const unsigned char *p, Py_ssize_t length,
         int verify_header, int verify_transport, PyObject *destinations,
         PyObject *refused_sources)
{
    PyObject *source;
    PyObject *destination;
    int found;
    if (!plain_shape(p, length)) {
        Py_RETURN_NONE;
    }
    /* The addresses before the checksums: an intercepting stack sees mostly packets to
     * other addresses, which its full path takes (and checks) anyway. */
    destination = PyBytes_FromStringAndSize((const char *)p + 16, 4);
    if (destination == NULL) {
        return NULL;
    }
    found = PySet_Contains(destinations, destination);
    if (found != 1) {
        Py_DECREF(destination);
        if (found < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    source = PyBytes_FromStringAndSize((const char *)p + 12, 4);
    if (source == NULL) {
        Py_DECREF(destination);
        return NULL;
    }
    found = PySet_Contains(refused_sources, source);
    if (found != 0 || !sound(p, verify_header, verify_transport)) {
        Py_DECREF(source);
        Py_DECREF(destination);
        if (found < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return fields(state, data, p, source, destination);
}

static PyObject *
parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    Py_buffer view;
    PyObject *answer;
    int verify_header, verify_transport;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "parse() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    if (state->options_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "parse() before bind(options_type)");
        return NULL;
    }
    if (!PyAnySet_Check(args[3]) || !PyAnySet_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "parse(): destinations and refused_sources must be sets");
        return NULL;
    }
    verify_header = PyObject_IsTrue(args[1]);
    verify_transport = PyObject_IsTrue(args[2]);
    if (verify_header < 0 || verify_transport < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.itemsize != 1) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "parse(): data must be a buffer of bytes");
        return NULL;
    }
    answer = classify(state, args[0], (const unsigned char *)view.buf, view.len,
                      verify_header, verify_transport, args[3], args[4]);
    PyBuffer_Release(&view);
    return answer;
}

static PyObject *
bind(PyObject *module, PyObject *options_type)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    PyObject *slots;
    int index;
    if (!PyType_Check(options_type)) {
        PyErr_SetString(PyExc_TypeError, "bind() takes a class");
        return NULL;
    }
    /* Its slots must be the five fields timestamp_options sets, in this order. */
    slots = PyObject_GetAttrString(options_type, "__slots__");
    if (slots == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(slots) || PyTuple_GET_SIZE(slots) != OPTION_FIELDS) {
        Py_DECREF(slots);
        PyErr_SetString(PyExc_TypeError, "bind(): the class's __slots__ are not TcpOptions'");
        return NULL;
    }
    for (index = 0; index < OPTION_FIELDS; index++) {
        PyObject *name = PyTuple_GET_ITEM(slots, index);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, FIELD_NAMES[index])) {
            Py_DECREF(slots);
            PyErr_SetString(PyExc_TypeError, "bind(): the class's __slots__ are not TcpOptions'");
            return NULL;
        }
    }
    Py_DECREF(slots);
    /* timestamp_options makes its objects without __init__: nothing may run there. */
    if (PyObject_HasAttrString(options_type, "__post_init__")) {
        PyErr_SetString(PyExc_TypeError, "bind(): the class has a __post_init__");
        return NULL;
    }
    Py_XSETREF(state->options_type, (PyTypeObject *)Py_NewRef(options_type));
    Py_RETURN_NONE;
}

static int
module_exec(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    int index;
    state->options_type = NULL;
    for (index = 0; index < OPTION_FIELDS; index++) {
        state->field_names[index] = PyUnicode_InternFromString(FIELD_NAMES[index]);
        if (state->field_names[index] == NULL) {
            return -1;
        }
    }
    return 0;
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    if (state != NULL) {
        Py_VISIT(state->options_type);
    }
    return 0;
}

static int
module_clear(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    int index;
    if (state != NULL) {
        Py_CLEAR(state->options_type);
        for (index = 0; index < OPTION_FIELDS; index++) {
            Py_CLEAR(state->field_names[index]);
        }
    }
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse($module, data, verify_header, verify_transport, destinations,\n"
     "      refused_sources, /)\n--\n\n"
     "A plain IPv4 TCP packet's fields, or None (see wire/plain_tcp4.py)."},
    {"bind", bind, METH_O,
     "bind($module, options_type, /)\n--\n\n"
     "The TcpOptions class that parse answers the timestamp-only layout with."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* parse reads its state (set once by bind) and holds the buffer while it reads. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aionetstack.wire._plain_tcp4",
    .m_doc = "The plain IPv4 TCP receive classification in C (see wire/plain_tcp4.py).",
    .m_size = sizeof(ModuleState),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__plain_tcp4(void)
{
    return PyModuleDef_Init(&module_definition);
}
