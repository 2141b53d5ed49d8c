/*
 * devref.h — device protocol primitives written straight from the
 * specifications, for tests, fuzz targets and benchmarks to build and
 * check frames independently of the decoders under test (src/proto_*.c).
 */
#ifndef HUBCAP_TEST_DEVREF_H
#define HUBCAP_TEST_DEVREF_H

#include <stddef.h>
#include <stdint.h>

/* CRC-16/IBM (ARC: reflected polynomial 0xA001, initial value 0), bit by
 * bit, as Teltonika's protocol documents it. */
uint16_t devref_crc16_ibm(const uint8_t *p, size_t n);

/* JT/T 808: raw (header, body, checksum) between 0x7e flags, with 0x7e ->
 * 0x7d 0x02 and 0x7d -> 0x7d 0x01; frame needs 2 * n + 2 bytes.  Returns
 * the frame's length. */
size_t devref_jt808_escape(const uint8_t *raw, size_t n, uint8_t *frame);

/* JT/T 808: append the XOR checksum of raw[0..n) at raw[n] (raw has room
 * for it), then escape the n + 1 bytes into frame; the frame's length. */
size_t devref_jt808_seal(uint8_t *raw, size_t n, uint8_t *frame);

/* JT/T 808: the reverse, into raw (cap bytes).  Returns the raw length
 * (checksum byte included), or -1 when frame is not flagged, holds a bare
 * flag or a bad escape, or does not fit, and -2 when the XOR of all raw
 * bytes (the checksum included) is not 0. */
long devref_jt808_unescape(const uint8_t *frame, size_t len, uint8_t *raw, size_t cap);

#endif
