/* The two headers every data segment the stack sends carries, packed in C: the
 * 20-byte IPv4 header and the 32-byte TCP header with the timestamp option alone.
 * struct.Struct.pack parses its format and converts each of its 10 or 15 arguments
 * generically; here the layout is fixed and the arguments are checked once.
 *
 * ipv4_header(source, destination, protocol, payload_length, ttl, identification)
 *     -> bytes: RFC 791 §3.1, version 4, no options, DF set, not a fragment, the
 *     header checksum computed (RFC 1071). source and destination: 4-byte bytes.
 *     wire/ipv4_send.py's simple_ipv4_header_python is the reference.
 *
 * tcp_timestamp_header(source_port, destination_port, seq, ack, flags, window,
 *     checksum, tsval, tsecr) -> bytes: RFC 9293 §3.1, data offset 8 words, then
 *     NOP NOP and the timestamps option (RFC 7323 §3, Appendix A's layout). checksum
 *     is written as given (a partial sum for the device to complete, or 0).
 *     wire/tcp_send.py's timestamp_header_python is the reference.
 *
 * Both raise ValueError for a field out of its range and TypeError for an address
 * that is not bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define IPV4_HEADER_LENGTH 20
#define IPV4_VERSION_IHL 0x45     /* version 4, 5 words: no options */
#define IPV4_FLAG_DF 0x4000       /* RFC 791 §3.1 Flags: Don't Fragment */
#define IPV4_MAX_PAYLOAD (65535 - IPV4_HEADER_LENGTH)
#define TCP_TIMESTAMP_HEADER_LENGTH 32
#define TCP_TIMESTAMP_OFFSET_BYTE ((TCP_TIMESTAMP_HEADER_LENGTH / 4) << 4)
#define TCP_OPTION_NOP 1          /* RFC 9293 §3.2 */
#define TCP_OPTION_TIMESTAMPS 8   /* RFC 7323 §3: kind 8, length 10 */
#define TCP_OPTION_TIMESTAMPS_LENGTH 10

/* args[index] as an unsigned value of at most maximum; -1 with an exception set. */
static int
field(PyObject *const *args, Py_ssize_t index, unsigned long maximum, const char *name,
      unsigned long *out)
{
    unsigned long value = PyLong_AsUnsignedLong(args[index]);
    if (value == (unsigned long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Format(PyExc_ValueError, "%s must be in 0..%lu", name, maximum);
        }
        return -1;
    }
    if (value > maximum) {
        PyErr_Format(PyExc_ValueError, "%s must be in 0..%lu", name, maximum);
        return -1;
    }
    *out = value;
    return 0;
}

/* The 4 bytes of a bytes address; NULL with an exception set. */
static const unsigned char *
address(PyObject *value, const char *name)
{
    if (!PyBytes_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes", name);
        return NULL;
    }
    if (PyBytes_GET_SIZE(value) != 4) {
        PyErr_Format(PyExc_ValueError, "%s must be 4 bytes", name);
        return NULL;
    }
    return (const unsigned char *)PyBytes_AS_STRING(value);
}

static void
put16(unsigned char *out, unsigned long value)
{
    out[0] = (unsigned char)(value >> 8);
    out[1] = (unsigned char)value;
}

static void
put32(unsigned char *out, unsigned long value)
{
    put16(out, value >> 16);
    put16(out + 2, value & 0xFFFF);
}

static PyObject *
ipv4_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long protocol, payload_length, ttl, identification;
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "ipv4_header(source, destination, protocol, payload_length, ttl, "
                        "identification) takes 6 arguments");
        return NULL;
    }
    const unsigned char *source = address(args[0], "source");
    if (source == NULL) {
        return NULL;
    }
    const unsigned char *destination = address(args[1], "destination");
    if (destination == NULL || field(args, 2, 0xFF, "protocol", &protocol) < 0
        || field(args, 3, IPV4_MAX_PAYLOAD, "payload_length", &payload_length) < 0
        || field(args, 4, 0xFF, "ttl", &ttl) < 0
        || field(args, 5, 0xFFFF, "identification", &identification) < 0) {
        return NULL;
    }
    unsigned char header[IPV4_HEADER_LENGTH];
    unsigned long total_length = IPV4_HEADER_LENGTH + payload_length;
    header[0] = IPV4_VERSION_IHL;
    header[1] = 0;
    put16(header + 2, total_length);
    put16(header + 4, identification);
    put16(header + 6, IPV4_FLAG_DF);
    header[8] = (unsigned char)ttl;
    header[9] = (unsigned char)protocol;
    memcpy(header + 12, source, 4);
    memcpy(header + 16, destination, 4);
    /* RFC 1071: the one's complement of the one's complement sum of the header's words,
     * its own field counted as 0. */
    uint32_t sum = (IPV4_VERSION_IHL << 8) + total_length + identification + IPV4_FLAG_DF
                   + (ttl << 8 | protocol);
    for (int index = 12; index < IPV4_HEADER_LENGTH; index += 2) {
        sum += (uint32_t)(header[index] << 8 | header[index + 1]);
    }
    while (sum >> 16) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    put16(header + 10, ~sum & 0xFFFF);
    return PyBytes_FromStringAndSize((const char *)header, IPV4_HEADER_LENGTH);
}

static PyObject *
tcp_timestamp_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long source_port, destination_port, seq, ack, flags, window, checksum, tsval,
        tsecr;
    (void)module;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "tcp_timestamp_header(source_port, destination_port, seq, ack, "
                        "flags, window, checksum, tsval, tsecr) takes 9 arguments");
        return NULL;
    }
    if (field(args, 0, 0xFFFF, "source_port", &source_port) < 0
        || field(args, 1, 0xFFFF, "destination_port", &destination_port) < 0
        || field(args, 2, 0xFFFFFFFFUL, "seq", &seq) < 0
        || field(args, 3, 0xFFFFFFFFUL, "ack", &ack) < 0
        || field(args, 4, 0xFF, "flags", &flags) < 0
        || field(args, 5, 0xFFFF, "window", &window) < 0
        || field(args, 6, 0xFFFF, "checksum", &checksum) < 0
        || field(args, 7, 0xFFFFFFFFUL, "tsval", &tsval) < 0
        || field(args, 8, 0xFFFFFFFFUL, "tsecr", &tsecr) < 0) {
        return NULL;
    }
    unsigned char header[TCP_TIMESTAMP_HEADER_LENGTH];
    put16(header, source_port);
    put16(header + 2, destination_port);
    put32(header + 4, seq);
    put32(header + 8, ack);
    header[12] = TCP_TIMESTAMP_OFFSET_BYTE;
    header[13] = (unsigned char)flags;
    put16(header + 14, window);
    put16(header + 16, checksum);
    put16(header + 18, 0); /* the urgent pointer */
    header[20] = TCP_OPTION_NOP;
    header[21] = TCP_OPTION_NOP;
    header[22] = TCP_OPTION_TIMESTAMPS;
    header[23] = TCP_OPTION_TIMESTAMPS_LENGTH;
    put32(header + 24, tsval);
    put32(header + 28, tsecr);
    return PyBytes_FromStringAndSize((const char *)header, TCP_TIMESTAMP_HEADER_LENGTH);
}

static PyMethodDef methods[] = {
    {"ipv4_header", (PyCFunction)(void (*)(void))ipv4_header, METH_FASTCALL,
     "ipv4_header(source, destination, protocol, payload_length, ttl, identification) -> "
     "bytes: a 20-byte IPv4 header, DF set, with its checksum."},
    {"tcp_timestamp_header", (PyCFunction)(void (*)(void))tcp_timestamp_header,
     METH_FASTCALL,
     "tcp_timestamp_header(source_port, destination_port, seq, ack, flags, window, "
     "checksum, tsval, tsecr) -> bytes: a 32-byte TCP header, NOP NOP and timestamps."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED}, /* no state; the arguments are read once */
#endif
    {0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aionetstack.wire._headers",
    .m_doc = "The send path's IPv4 and TCP headers packed in C (see wire/ipv4_send.py "
             "and wire/tcp_send.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__headers(void)
{
    return PyModuleDef_Init(&module_definition);
}
