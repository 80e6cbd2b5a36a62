/* The Internet checksum's word sum (RFC 1071) for the package's C modules
 * (wire/_csum.c, core/_gro.c): header-only, static functions, no Python objects.
 *
 * rfc1071_sum(p, n): the one's complement sum of the big-endian 16-bit words of
 * n bytes (an odd last byte padded with a zero byte on the right, RFC 1071 §4.1),
 * folded to 0..0xFFFF with end-around carries. It is 0 only when every byte is 0,
 * so a non-zero sum that is a multiple of 0xFFFF reads 0xFFFF.
 *
 * Native-order loads are summed and the folded result byte-swapped on
 * little-endian hosts: the sum is independent of byte order (RFC 1071 §2(B)).
 */
#ifndef AIONETSTACK_RFC1071_H
#define AIONETSTACK_RFC1071_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

/* 32-bit loads added into 64 bits: 2**32 of them cannot overflow, so fold each
 * block of at most this many bytes (16 GiB) before the next. Where Py_ssize_t has
 * 32 bits a buffer is one block (2**29 loads at most). */
#if SIZEOF_SIZE_T > 4
#define RFC1071_BLOCK_BYTES ((Py_ssize_t)1 << 34)
#else
#define RFC1071_BLOCK_BYTES PY_SSIZE_T_MAX
#endif

static inline uint32_t
rfc1071_fold(uint64_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return (uint32_t)sum;
}

static inline uint32_t
rfc1071_native_sum(const unsigned char *p, Py_ssize_t n)
{
    uint64_t total = 0;
    while (n > 0) {
        Py_ssize_t block = n < RFC1071_BLOCK_BYTES ? n : RFC1071_BLOCK_BYTES;
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
        total = rfc1071_fold(total + rfc1071_fold(acc));
    }
    return (uint32_t)total;
}

/* The native sum as the big-endian one (see the top of this file). */
static inline uint32_t
rfc1071_from_native(uint32_t sum)
{
#if PY_BIG_ENDIAN
    return sum;
#else
    return ((sum >> 8) | (sum << 8)) & 0xFFFF;
#endif
}

static inline uint32_t
rfc1071_sum(const unsigned char *p, Py_ssize_t n)
{
    return rfc1071_from_native(rfc1071_native_sum(p, n));
}

#endif /* AIONETSTACK_RFC1071_H */
