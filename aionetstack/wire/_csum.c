/* The Internet checksum's word sum (RFC 1071) in C: the one per-byte loop of the
 * stack that Python cannot do at memory speed (wire/checksum.py has the contract
 * and the pure-Python equivalent used when this module is not built).
 *
 * word_sum(data) -> int: the one's complement sum of the big-endian 16-bit words
 * of any contiguous buffer (an odd last byte padded with a zero byte on the right,
 * RFC 1071 §4.1), folded to 0..0xFFFF with end-around carries. It is 0 only when
 * every byte is 0, so a non-zero sum that is a multiple of 0xFFFF reads 0xFFFF.
 *
 * Native-order loads are summed and the folded result byte-swapped on
 * little-endian hosts: the sum is independent of byte order (RFC 1071 §2(B)).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* 32-bit loads added into 64 bits: 2**32 of them cannot overflow, so fold each
 * block of at most this many bytes (16 GiB) before the next. Where Py_ssize_t has
 * 32 bits a buffer is one block (2**29 loads at most). */
#if SIZEOF_SIZE_T > 4
#define BLOCK_BYTES ((Py_ssize_t)1 << 34)
#else
#define BLOCK_BYTES PY_SSIZE_T_MAX
#endif

static uint32_t
fold16(uint64_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return (uint32_t)sum;
}

static uint32_t
native_sum(const unsigned char *p, Py_ssize_t n)
{
    uint64_t total = 0;
    while (n > 0) {
        Py_ssize_t block = n < BLOCK_BYTES ? n : BLOCK_BYTES;
        uint64_t acc = 0;
        n -= block;
        while (block >= 16) {
            uint32_t w0, w1, w2, w3;
            memcpy(&w0, p, 4);
            memcpy(&w1, p + 4, 4);
            memcpy(&w2, p + 8, 4);
            memcpy(&w3, p + 12, 4);
            acc += (uint64_t)w0 + w1 + w2 + w3;
            p += 16;
            block -= 16;
        }
        while (block >= 2) {
            uint16_t w;
            memcpy(&w, p, 2);
            acc += w;
            p += 2;
            block -= 2;
        }
        if (block) { /* the odd last byte: the high byte of a big-endian word */
#if PY_BIG_ENDIAN
            acc += (uint32_t)p[0] << 8;
#else
            acc += p[0];
#endif
            p += 1;
        }
        total = fold16(total + fold16(acc));
    }
    return (uint32_t)total;
}

static PyObject *
word_sum(PyObject *module, PyObject *data)
{
    Py_buffer view;
    uint32_t sum;
    (void)module;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len < 4096) {
        sum = native_sum((const unsigned char *)view.buf, view.len);
    } else {
        Py_BEGIN_ALLOW_THREADS
        sum = native_sum((const unsigned char *)view.buf, view.len);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
#if !PY_BIG_ENDIAN
    sum = ((sum >> 8) | (sum << 8)) & 0xFFFF;
#endif
    return PyLong_FromUnsignedLong(sum);
}

static PyMethodDef methods[] = {
    {"word_sum", word_sum, METH_O,
     "word_sum($module, data, /)\n--\n\n"
     "The one's complement sum of data's big-endian 16-bit words (RFC 1071), folded\n"
     "to 0..0xFFFF; 0 only when every byte is 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED}, /* no state, and the buffer is held while read */
#endif
    {0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aionetstack.wire._csum",
    .m_doc = "The Internet checksum's word sum in C (see wire/checksum.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__csum(void)
{
    return PyModuleDef_Init(&module_definition);
}
