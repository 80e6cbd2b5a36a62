/* The Internet checksum's word sum (RFC 1071) in C: the one per-byte loop of the
 * stack that Python cannot do at memory speed (wire/checksum.py has the contract
 * and the pure-Python equivalent used when this module is not built).
 *
 * word_sum(data) -> int: the one's complement sum of the big-endian 16-bit words
 * of any contiguous buffer (an odd last byte padded with a zero byte on the right,
 * RFC 1071 §4.1), folded to 0..0xFFFF with end-around carries. It is 0 only when
 * every byte is 0, so a non-zero sum that is a multiple of 0xFFFF reads 0xFFFF.
 *
 * The loop itself is rfc1071_sum (rfc1071.h), shared with core/_gro.c.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "rfc1071.h"

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
        sum = rfc1071_sum((const unsigned char *)view.buf, view.len);
    } else {
        Py_BEGIN_ALLOW_THREADS
        sum = rfc1071_sum((const unsigned char *)view.buf, view.len);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
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
