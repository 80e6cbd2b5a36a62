/* Software GRO's batch passes in C: core/gro.py's Coalescer.coalesce_python and
 * thin_acks_python, the references, do the same work in Python at about 6 µs per
 * MTU-sized packet (the largest part of a TUN without receive offload) and 2.7 µs
 * per pure ACK; this takes a fraction of either.
 * The rules (which segments merge, which pure ACKs are thinned) are in gro.py's
 * module docstring, and tests/core/test_gro_native.py holds the two to the same
 * output for every batch it draws.
 *
 * coalesce(packets, verify, merged_type) -> (items, merged, segments_merged,
 * acks_thinned): packets is a sequence of contiguous buffers (bytes or
 * memoryview); items is a new list holding, in order, each packet that goes on as
 * it is (the same object) and, for each run of merged segments, the result of
 * merged_type(packet: bytes, count: int).
 *
 * thin_acks(packets, verify) -> (items, 0, 0, acks_thinned): the pass for a link
 * whose kernel merged the data already (Coalescer.thin_acks_python): pure ACKs
 * thinned, nothing merged. Nothing here keeps state between calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../wire/rfc1071.h"

#define PROTO_TCP 6
#define TCP_ACK 0x10
#define TCP_PSH 0x08
/* The IPv4 flags and fragment offset field, less DF: MF and the offset (RFC 791 §3.1). */
#define IPV4_FRAGMENT_FIELD 0x3FFF
/* The largest IPv4 total length and IPv6 payload length (RFC 791 §3.1, RFC 8200 §3). */
#define MAX_LENGTH 0xFFFF
#define SEQ_HALF 0x80000000u
/* NOP NOP TS (RFC 7323 Appendix A), the one option layout of a thinnable ACK. */
static const unsigned char TIMESTAMP_PREFIX[4] = {1, 1, 8, 10};

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

/* A flow of the batch: its key is its addresses then ports, which lie together in
 * the packet (IPv4 bytes 12..24, IPv6 bytes 8..44), so the key points into the
 * first packet of the flow (the buffers are held for the whole call). */
typedef struct {
    const unsigned char *key; /* NULL: the slot is free */
    Py_ssize_t key_length;
    /* Where the flow's last data segment outside a run ended (gro.py's ``ends``). */
    int has_end;
    uint32_t end;
    /* Its open run of pure ACKs (gro.py's ``acks``): valid when ack_generation is the
     * batch's current one, so that a packet of no known flow ends every run at once. */
    uint64_t ack_generation;
    Py_ssize_t ack_slot;
    uint32_t ack_ack;
    uint32_t ack_seq;
    Py_ssize_t ack_tcp_length;
    int ack_thinnable;
} Flow;

/* The open run (gro.py's _Run); its merged payloads are pieces[0..piece_count). */
typedef struct {
    int active;
    Py_ssize_t first;
    Py_ssize_t ip_length;
    Py_ssize_t header_end;
    Flow *flow;
    uint64_t ip_same;
    uint32_t ack;
    uint32_t window;
    Py_ssize_t size;
    Py_ssize_t total;
    uint32_t next_seq;
    int push;
    int closed;
} Run;

/* A payload merged into the open run: its packet's index and where the payload starts. */
typedef struct {
    Py_ssize_t packet;
    Py_ssize_t offset;
} Piece;

typedef struct {
    Py_buffer *views;
    PyObject **objects;
    Piece *pieces; /* coalesce only: the open run's merged payloads */
    Py_ssize_t piece_count;
    Flow *flows;
    size_t flow_mask;
    uint64_t ack_generation;
    PyObject *out;
    PyObject *merged_type;
    Py_ssize_t merged;
    Py_ssize_t segments_merged;
    Py_ssize_t acks_thinned;
} Batch;

static Flow *
find_flow(Batch *batch, const unsigned char *key, Py_ssize_t key_length)
{
    uint64_t hash = 1469598103934665603ull; /* FNV-1a */
    for (Py_ssize_t i = 0; i < key_length; i++) {
        hash = (hash ^ key[i]) * 1099511628211ull;
    }
    size_t index = (size_t)hash & batch->flow_mask;
    for (;;) {
        Flow *flow = &batch->flows[index];
        if (flow->key == NULL) {
            flow->key = key;
            flow->key_length = key_length;
            return flow;
        }
        if (flow->key_length == key_length && memcmp(flow->key, key, key_length) == 0) {
            return flow;
        }
        index = (index + 1) & batch->flow_mask; /* never full: twice the packets */
    }
}

/* gro.py's _checksums_ok: the IPv4 header checksum (RFC 791 §3.1) and the TCP one
 * (RFC 9293 §3.1), each a sum that is a multiple of 0xFFFF when right. */
static int
checksums_ok(const unsigned char *p, Py_ssize_t length, Py_ssize_t ip_length)
{
    uint64_t value;
    if (ip_length == 20) {
        if (rfc1071_sum(p, 20) % 0xFFFF) {
            return 0;
        }
        value = rfc1071_sum(p, length); /* the right IP header adds a multiple */
        value += rfc1071_sum(p + 12, 8);
    }
    else {
        value = rfc1071_sum(p + 40, length - 40);
        value += rfc1071_sum(p + 8, 32);
    }
    value += PROTO_TCP + (uint64_t)(length - ip_length);
    return value % 0xFFFF == 0;
}

static int
append_packet(Batch *batch, Py_ssize_t index)
{
    return PyList_Append(batch->out, batch->objects[index]);
}

/* gro.py's _flush: the run's first packet as it is, or the merged segment. */
static int
flush_run(Batch *batch, Run *run)
{
    if (batch->piece_count == 0) {
        return append_packet(batch, run->first);
    }
    const Py_buffer *first = &batch->views[run->first];
    Py_ssize_t length = run->header_end + run->total;
    PyObject *packet = PyBytes_FromStringAndSize(NULL, length);
    if (packet == NULL) {
        return -1;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(packet);
    memcpy(p, first->buf, first->len);
    Py_ssize_t at = first->len;
    for (Py_ssize_t i = 0; i < batch->piece_count; i++) {
        const Py_buffer *view = &batch->views[batch->pieces[i].packet];
        Py_ssize_t offset = batch->pieces[i].offset;
        memcpy(p + at, (const unsigned char *)view->buf + offset, view->len - offset);
        at += view->len - offset;
    }
    if (run->ip_length == 20) {
        p[2] = (unsigned char)(length >> 8);
        p[3] = (unsigned char)length;
        p[10] = p[11] = 0;
        uint32_t checksum = ~rfc1071_sum(p, 20) & 0xFFFF;
        p[10] = (unsigned char)(checksum >> 8);
        p[11] = (unsigned char)checksum;
    }
    else {
        Py_ssize_t payload_length = run->header_end - 40 + run->total;
        p[4] = (unsigned char)(payload_length >> 8);
        p[5] = (unsigned char)payload_length;
    }
    if (run->push) {
        p[run->ip_length + 13] |= TCP_PSH;
    }
    Py_ssize_t count = batch->piece_count + 1;
    PyObject *item = PyObject_CallFunction(batch->merged_type, "(Nn)", packet, count);
    if (item == NULL) {
        return -1;
    }
    int failed = PyList_Append(batch->out, item);
    Py_DECREF(item);
    batch->merged += 1;
    batch->segments_merged += count;
    return failed;
}

/* gro.py's _close: put the run out, remembering where its flow's data ended. */
static int
close_run(Batch *batch, Run *run)
{
    if (!run->active) {
        return 0;
    }
    run->active = 0;
    run->flow->has_end = 1;
    run->flow->end = run->next_seq;
    return flush_run(batch, run);
}

/* gro.py's _thin: put out a pure ACK, or let it replace the newest one of its run. */
static int
thin(Batch *batch, Py_ssize_t index, Flow *flow, uint32_t seq, uint32_t ack,
     Py_ssize_t tcp_length)
{
    int thinnable = 0;
    if (flow->ack_generation == batch->ack_generation
        && seq == flow->ack_seq && tcp_length == flow->ack_tcp_length
        && (uint32_t)(ack - flow->ack_ack) != 0 && (uint32_t)(ack - flow->ack_ack) < SEQ_HALF) {
        if (flow->ack_thinnable) {
            PyObject *packet = batch->objects[index];
            Py_INCREF(packet);
            if (PyList_SetItem(batch->out, flow->ack_slot, packet) < 0) {
                return -1;
            }
            flow->ack_ack = ack;
            batch->acks_thinned += 1;
            return 0;
        }
        thinnable = 1;
    }
    flow->ack_generation = batch->ack_generation;
    flow->ack_slot = PyList_GET_SIZE(batch->out);
    flow->ack_ack = ack;
    flow->ack_seq = seq;
    flow->ack_tcp_length = tcp_length;
    flow->ack_thinnable = thinnable;
    return append_packet(batch, index);
}

/* gro.py's _plain_ack_options: no options, or the timestamps alone. */
static int
plain_ack_options(const unsigned char *p, Py_ssize_t ip_length, Py_ssize_t tcp_length)
{
    return tcp_length == 20
        || (tcp_length == 32 && memcmp(p + ip_length + 20, TIMESTAMP_PREFIX, 4) == 0);
}

/* One packet of the batch (gro.py's coalesce_python loop body). */
static int
take_packet(Batch *batch, Run *run, Py_ssize_t index, int verify)
{
    const unsigned char *p = (const unsigned char *)batch->views[index].buf;
    Py_ssize_t length = batch->views[index].len;
    Py_ssize_t ip_length;
    uint64_t ip_same;
    const unsigned char *key;
    Py_ssize_t key_length;
    /* -- IP (gro.py's _ip_shape) ------------------------------------------------ */
    if (length >= 40 && p[0] == 0x45) {
        uint32_t fragment = be16(p + 6);
        if (p[9] != PROTO_TCP || fragment & IPV4_FRAGMENT_FIELD || be16(p + 2) != length) {
            goto not_tcp;
        }
        ip_length = 20;
        ip_same = (uint64_t)p[1] << 24 | fragment << 8 | p[8];
        key = p + 12;
        key_length = 12;
    }
    else if (length >= 60 && p[0] >> 4 == 6) {
        if (p[6] != PROTO_TCP || be16(p + 4) + 40 != length) {
            goto not_tcp;
        }
        ip_length = 40;
        ip_same = (uint64_t)be32(p) << 8 | p[7];
        key = p + 8;
        key_length = 36;
    }
    else {
        goto not_tcp;
    }
    /* -- TCP -------------------------------------------------------------------- */
    const unsigned char *tcp = p + ip_length;
    uint32_t seq = be32(tcp + 4);
    uint32_t ack = be32(tcp + 8);
    unsigned data_offset = tcp[12];
    unsigned flags = tcp[13];
    uint32_t window = be16(tcp + 14);
    Py_ssize_t header_end = ip_length + (Py_ssize_t)(data_offset >> 4) * 4;
    Py_ssize_t size = length - header_end;
    Flow *flow = find_flow(batch, key, key_length);
    if (size == 0 && flags == TCP_ACK && (data_offset & 0x0F) == 0
        && plain_ack_options(p, ip_length, header_end - ip_length)
        && (!verify || checksums_ok(p, length, ip_length))) {
        if (close_run(batch, run) < 0) {
            return -1;
        }
        return thin(batch, index, flow, seq, ack, header_end - ip_length);
    }
    flow->ack_generation = 0; /* anything else of the flow ends its run of ACKs */
    if (size <= 0 || header_end < ip_length + 20 || (flags & ~TCP_PSH & 0xFF) != TCP_ACK
        || data_offset & 0x0F || (verify && !checksums_ok(p, length, ip_length))) {
        if (close_run(batch, run) < 0) {
            return -1;
        }
        return append_packet(batch, index);
    }
    uint32_t end = seq + (uint32_t)size;
    int push = flags != TCP_ACK;
    if (run->active && run->flow == flow) {
        if (run->next_seq != seq) { /* behind or ahead of the flow's last segment */
            goto alone;
        }
        Py_ssize_t options_length = header_end - ip_length - 20;
        if (!run->closed && run->ip_same == ip_same && run->ack == ack
            && run->window == window && size <= run->size
            && run->header_end + run->total + size - (ip_length - 20) <= MAX_LENGTH
            && run->header_end - run->ip_length - 20 == options_length
            && memcmp((const unsigned char *)batch->views[run->first].buf + ip_length + 20,
                      p + ip_length + 20, options_length) == 0) {
            batch->pieces[batch->piece_count] = (Piece){index, header_end};
            batch->piece_count += 1;
            run->total += size;
            run->next_seq = end;
            if (push || size < run->size) {
                run->push = push;
                run->closed = 1;
            }
            return 0;
        }
    }
    else if (flow->has_end && flow->end != seq) {
        goto alone;
    }
    if (close_run(batch, run) < 0) {
        return -1;
    }
    batch->piece_count = 0;
    *run = (Run){
        .active = 1, .first = index, .ip_length = ip_length, .header_end = header_end,
        .flow = flow, .ip_same = ip_same, .ack = ack, .window = window, .size = size,
        .total = size, .next_seq = end, .push = push, .closed = push,
    };
    return 0;
alone: /* a duplicate or a reordered segment goes on alone and starts no run */
    if (close_run(batch, run) < 0) {
        return -1;
    }
    flow->end = end; /* has_end is set: by close_run (the run's flow) or it led here */
    return append_packet(batch, index);
not_tcp: /* a packet of no known TCP flow ends the run and every run of ACKs */
    if (close_run(batch, run) < 0) {
        return -1;
    }
    batch->ack_generation += 1;
    return append_packet(batch, index);
}

/* gro.py's _thinned6 (for a pure-ACK-sized IPv6 packet): 1 when it went out or stood
 * in for an older one, 0 when it is not a plain pure ACK, -1 on error. */
static int
thin_ipv6(Batch *batch, Py_ssize_t index, int verify)
{
    const unsigned char *p = (const unsigned char *)batch->views[index].buf;
    Py_ssize_t length = batch->views[index].len;
    if (!(p[53] == TCP_ACK && p[6] == PROTO_TCP && be16(p + 4) + 40 == length)) {
        return 0;
    }
    unsigned data_offset = p[52];
    if (40 + (Py_ssize_t)(data_offset >> 4) * 4 != length || data_offset & 0x0F
        || !plain_ack_options(p, 40, length - 40)
        || (verify && !checksums_ok(p, length, 40))) {
        return 0;
    }
    Flow *flow = find_flow(batch, p + 8, 36);
    return thin(batch, index, flow, be32(p + 44), be32(p + 48), length - 40) < 0 ? -1 : 1;
}

/* One packet of an offload link's batch (gro.py's thin_acks_python loop body). */
static int
thin_packet(Batch *batch, Py_ssize_t index, int verify)
{
    const unsigned char *p = (const unsigned char *)batch->views[index].buf;
    Py_ssize_t length = batch->views[index].len;
    if ((length == 40 || length == 52) && p[33] == TCP_ACK) {
        if (p[0] == 0x45 && p[9] == PROTO_TCP && be16(p + 2) == length
            && !(be16(p + 6) & IPV4_FRAGMENT_FIELD)
            && p[32] == (unsigned)((length - 20) << 2) /* header to the end; reserved 0 */
            && (length == 40 || memcmp(p + 40, TIMESTAMP_PREFIX, 4) == 0)
            && rfc1071_sum(p, 20) % 0xFFFF == 0 /* RFC 791 §3.1 */
            && (!verify || checksums_ok(p, length, 20))) {
            Flow *flow = find_flow(batch, p + 12, 12);
            return thin(batch, index, flow, be32(p + 24), be32(p + 28), length - 20);
        }
    }
    else if ((length == 60 || length == 72) && p[0] >> 4 == 6) {
        int thinned = thin_ipv6(batch, index, verify);
        if (thinned) {
            return thinned < 0 ? -1 : 0;
        }
    }
    batch->ack_generation += 1; /* any other packet ends every run */
    return append_packet(batch, index);
}

/* The pass over one batch: ``merge`` (coalesce) or the ACK-only pass (thin_acks). */
static PyObject *
run_batch(PyObject *packets, PyObject *verify_flag, PyObject *merged_type, int merge)
{
    int verify = PyObject_IsTrue(verify_flag);
    if (verify < 0) {
        return NULL;
    }
    /* A tuple of its own: merged_type is called meanwhile, and the batch stays as read. */
    PyObject *sequence = PySequence_Tuple(packets);
    if (sequence == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(sequence);
    PyObject **objects = &PyTuple_GET_ITEM(sequence, 0);
    size_t capacity = 8;
    while (capacity < (size_t)count * 2) {
        capacity <<= 1;
    }
    Batch batch = {
        .views = PyMem_Calloc(count ? count : 1, sizeof(Py_buffer)),
        .objects = objects,
        .pieces = merge ? PyMem_Malloc((count ? count : 1) * sizeof(Piece)) : NULL,
        .flows = PyMem_Calloc(capacity, sizeof(Flow)),
        .flow_mask = capacity - 1,
        .ack_generation = 1,
        .out = PyList_New(0),
        .merged_type = merged_type,
    };
    Py_ssize_t held = 0;
    PyObject *result = NULL;
    if (!batch.views || (merge && !batch.pieces) || !batch.flows) {
        PyErr_NoMemory();
        goto done;
    }
    if (batch.out == NULL) {
        goto done;
    }
    for (; held < count; held++) {
        if (PyObject_GetBuffer(objects[held], &batch.views[held], PyBUF_SIMPLE) < 0) {
            goto done;
        }
    }
    Run run = {0};
    for (Py_ssize_t index = 0; index < count; index++) {
        int failed = merge ? take_packet(&batch, &run, index, verify)
                           : thin_packet(&batch, index, verify);
        if (failed < 0) {
            goto done;
        }
    }
    if (run.active && flush_run(&batch, &run) < 0) {
        goto done;
    }
    result = Py_BuildValue("(Onnn)", batch.out, batch.merged, batch.segments_merged,
                           batch.acks_thinned);
done:
    for (Py_ssize_t i = 0; i < held; i++) {
        PyBuffer_Release(&batch.views[i]);
    }
    PyMem_Free(batch.views);
    PyMem_Free(batch.pieces);
    PyMem_Free(batch.flows);
    Py_XDECREF(batch.out);
    Py_DECREF(sequence);
    return result;
}

static PyObject *
coalesce(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "coalesce() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    return run_batch(args[0], args[1], args[2], 1);
}

static PyObject *
thin_acks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "thin_acks() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    return run_batch(args[0], args[1], Py_None, 0);
}

static PyMethodDef methods[] = {
    {"coalesce", (PyCFunction)(void (*)(void))coalesce, METH_FASTCALL,
     "coalesce($module, packets, verify, merged_type, /)\n--\n\n"
     "One batch through software GRO (core/gro.py): (items, merged, segments_merged,\n"
     "acks_thinned)."},
    {"thin_acks", (PyCFunction)(void (*)(void))thin_acks, METH_FASTCALL,
     "thin_acks($module, packets, verify, /)\n--\n\n"
     "The ACK-only pass of a link whose kernel merged the data (core/gro.py): (items,\n"
     "0, 0, acks_thinned)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* No state; the batch is copied into a tuple of its own and each packet held as
     * a buffer (its length fixed while exported). */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aionetstack.core._gro",
    .m_doc = "Software GRO's batch pass in C (see core/gro.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__gro(void)
{
    return PyModuleDef_Init(&module_definition);
}
