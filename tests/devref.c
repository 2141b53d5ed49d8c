/*
 * devref.c — see devref.h.
 */
#include "devref.h"

uint16_t devref_crc16_ibm(const uint8_t *p, size_t n)
{
    uint16_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c & 1) ? (uint16_t)((c >> 1) ^ 0xA001) : (uint16_t)(c >> 1);
    }
    return c;
}

size_t devref_jt808_escape(const uint8_t *raw, size_t n, uint8_t *frame)
{
    size_t o = 0;
    frame[o++] = 0x7e;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == 0x7e || raw[i] == 0x7d) {
            frame[o++] = 0x7d;
            frame[o++] = raw[i] == 0x7e ? 0x02 : 0x01;
        } else {
            frame[o++] = raw[i];
        }
    }
    frame[o++] = 0x7e;
    return o;
}

size_t devref_jt808_seal(uint8_t *raw, size_t n, uint8_t *frame)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= raw[i];
    raw[n] = x;
    return devref_jt808_escape(raw, n + 1, frame);
}

long devref_jt808_unescape(const uint8_t *frame, size_t len, uint8_t *raw, size_t cap)
{
    size_t n = 0;
    uint8_t x = 0;
    if (len < 2 || frame[0] != 0x7e || frame[len - 1] != 0x7e)
        return -1;
    for (size_t i = 1; i + 1 < len; i++) {
        uint8_t b = frame[i];
        if (b == 0x7e || n == cap)
            return -1;
        if (b == 0x7d) {
            if (i + 2 >= len || (frame[i + 1] != 0x01 && frame[i + 1] != 0x02))
                return -1;
            b = frame[++i] == 0x01 ? 0x7d : 0x7e;
        }
        raw[n++] = b;
        x ^= b;
    }
    return x ? -2 : (long)n;
}
