"""Compact encodings for blocks of samples.

Integers (timestamps in milliseconds, counts) are delta-encoded to order 0, 1 or 2 (the
order giving the narrowest integers), stored in the narrowest of 1/2/4/8 bytes, byte-shuffled
(all low bytes, then all next bytes ...) so zlib sees long runs, and deflated.

Values (float64) become integers through a per-block scale, then go through the integer
path. Precision:

* **exact** when every value in the block is a decimal with at most 6 digits after the point
  or a binary fraction with at most 16 bits after the point (percentages with one decimal,
  temperatures, clocks, byte counts up to 2**53, watts from milliwatts, load averages):
  the decoded float is the one written, or, when the float written was a few units in the
  last place off its decimal (``3 * 0.1``), the float of that decimal (``0.3``);
* otherwise (rates computed over measured intervals, timings ...) **quantised** to a
  power-of-two step no larger than ``max|v| * 2**-PRECISION_BITS`` of the block: with 20
  bits, an error at most about one millionth of the largest magnitude in the block. Raw
  values are rounded twice (in their minute block, then in their compacted hour block), so
  a stored raw value is within ``2**-19`` (about two millionths) of the largest magnitude
  of that series in that hour. Rollup sums are rounded once, the same way, per packed block.

Timestamps are stored in whole milliseconds.

Non-finite values are never encoded (the writer leaves them out, like absent metrics).
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence

import numpy as np

PRECISION_BITS = 20
ZLIB_LEVEL = 6

_MAX_EXACT = 2.0**53
_ULPS = 2.0**-49  # eight units in the last place of a float64
_DECIMAL_SCALES = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
_BINARY_SCALES = tuple(float(2**k) for k in range(0, 17))

_INT_HEAD = struct.Struct("<BB")  # delta order, byte width
_VALUE_HEAD = struct.Struct("<Bd")  # codec, scale
_CODEC_SCALED = 1
_PART_LEN = struct.Struct("<I")


def _deflate(data: bytes) -> bytes:
    # Raw deflate (no zlib header or checksum): 6 bytes less per block, and SQLite pages
    # already carry their own integrity.
    return zlib.compress(data, ZLIB_LEVEL, wbits=-15)


def _inflate(data: bytes) -> bytes:
    return zlib.decompress(data, wbits=-15)


def _width(peak: int) -> int:
    if peak < 0x80:
        return 1
    if peak < 0x8000:
        return 2
    if peak < 0x80000000:
        return 4
    return 8


def encode_ints(values: np.ndarray) -> bytes:
    """Encode an int64 array (see module doc)."""
    current = np.asarray(values, dtype=np.int64)
    heads: list[int] = []
    best: tuple[int, int, int, list[int], np.ndarray] | None = None
    for order in range(3):
        if order:
            if current.size == 0:
                break
            heads.append(int(current[0]))
            current = np.diff(current)
        peak = int(np.abs(current).max()) if current.size else 0
        width = _width(peak)
        cost = int(np.abs(current).sum()) if current.size else 0
        if best is None or (width, cost) < (best[0], best[1]):
            best = (width, cost, order, list(heads), current)
    assert best is not None
    width, _, order, heads, payload = best
    raw = payload.astype(f"<i{width}")
    if width > 1:
        raw = raw.view(np.uint8).reshape(-1, width).T
    body = _deflate(np.ascontiguousarray(raw).tobytes())
    return _INT_HEAD.pack(order, width) + struct.pack(f"<{order}q", *heads) + body


def decode_ints(blob: bytes | memoryview) -> np.ndarray:
    """Inverse of :func:`encode_ints`: an int64 array."""
    order, width = _INT_HEAD.unpack_from(blob)
    offset = _INT_HEAD.size + 8 * order
    heads = struct.unpack_from(f"<{order}q", blob, _INT_HEAD.size)
    raw = np.frombuffer(_inflate(blob[offset:]), dtype=np.uint8)
    if width > 1:
        # Un-shuffle plane by plane: strided copies of whole planes are several times
        # faster than a transposed copy of the (width, n) byte matrix.
        planes = raw.reshape(width, -1)
        joined = np.empty((planes.shape[1], width), dtype=np.uint8)
        for i in range(width):
            joined[:, i] = planes[i]
        raw = joined
    current = raw.view(f"<i{width}").reshape(-1)
    if not heads:
        return current.astype(np.int64)
    for head in reversed(heads):
        # Undo one np.diff: prepend the head and take the running sum, in place (the
        # assignment widens to int64 on the way).
        out = np.empty(current.size + 1, dtype=np.int64)
        out[0] = head
        out[1:] = current
        np.cumsum(out, out=out)
        current = out
    return current


def _exact(values: np.ndarray, scale: float, peak: float) -> bool:
    """Whether ``values * scale`` are integers, up to a few units in the last place (so
    ``3 * 0.1 == 0.30000000000000004`` counts as the decimal 0.3 it stands for)."""
    if peak * scale >= _MAX_EXACT:
        return False
    error = np.abs(np.rint(values * scale) / scale - values)
    return bool(np.all(error <= np.abs(values) * _ULPS))


def choose_scale(values: np.ndarray) -> tuple[float, bool]:
    """The scale turning ``values`` into integers, and whether that is exact."""
    if values.size == 0:
        return 1.0, True
    peak = float(np.abs(values).max())
    if peak == 0.0:
        return 1.0, True
    if _exact(values, 1.0, peak):  # integers (bytes, clocks, temperatures): the common case
        return 1.0, True
    # Prefilters: a decimal with <= 6 digits is exact at the largest decimal scale that keeps
    # the integers below 2**53, a binary fraction likewise; when both fail (noisy rates) we
    # go straight to quantising.
    candidates = []
    for family in (_DECIMAL_SCALES, _BINARY_SCALES):
        usable = [s for s in family if peak * s < _MAX_EXACT]
        if usable and _exact(values, usable[-1], peak):
            candidates.append(next(s for s in usable if _exact(values, s, peak)))
    if candidates:
        return min(candidates), True
    exponent = math.frexp(peak)[1]  # peak < 2**exponent
    return math.ldexp(1.0, PRECISION_BITS - exponent), False


def encode_values(values: np.ndarray) -> bytes:
    """Encode finite float64 values (see module doc for the precision)."""
    values = np.asarray(values, dtype=np.float64)
    scale, _ = choose_scale(values)
    ints = np.rint(values * scale).astype(np.int64)
    return _VALUE_HEAD.pack(_CODEC_SCALED, scale) + encode_ints(ints)


def decode_values(blob: bytes | memoryview, out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`encode_values`: a float64 array (written into ``out`` when given,
    which must have the right length)."""
    codec, scale = _VALUE_HEAD.unpack_from(blob)
    if codec != _CODEC_SCALED:
        raise ValueError(f"unknown value codec {codec} in a stored block")
    ints = decode_ints(memoryview(blob)[_VALUE_HEAD.size:])
    if out is None:
        return ints / scale
    if out.size != ints.size:
        raise ValueError(f"stored block holds {ints.size} values, expected {out.size}")
    return np.divide(ints, scale, out=out)


def encode_mask(present: np.ndarray) -> bytes:
    """A boolean presence array as deflated bits."""
    return _deflate(np.packbits(np.asarray(present, dtype=bool)).tobytes())


def decode_mask(blob: bytes, length: int) -> np.ndarray:
    """Inverse of :func:`encode_mask` for an array of ``length`` entries."""
    bits = np.frombuffer(_inflate(blob), dtype=np.uint8)
    return np.unpackbits(bits, count=length).astype(bool)


def pack_parts(parts: list[bytes]) -> bytes:
    """Concatenate encoded parts with their lengths."""
    out = bytearray(struct.pack("<B", len(parts)))
    for part in parts:
        out += _PART_LEN.pack(len(part))
        out += part
    return bytes(out)


def unpack_parts(blob: bytes) -> list[memoryview]:
    """Inverse of :func:`pack_parts`."""
    view = memoryview(blob)
    count = view[0]
    offset = 1
    parts = []
    for _ in range(count):
        (size,) = _PART_LEN.unpack_from(view, offset)
        offset += _PART_LEN.size
        parts.append(view[offset:offset + size])
        offset += size
    return parts


def encode_rollup(offsets: np.ndarray, count: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
                  vsum: np.ndarray, last: np.ndarray) -> bytes:
    """A packed run of rollup entries: bucket offsets (in buckets from the block start),
    counts, and the min, max, sum and last value of each bucket."""
    return pack_parts([encode_ints(offsets), encode_ints(count), encode_values(vmin),
                       encode_values(vmax), encode_values(vsum), encode_values(last)])


ROLLUP_FIELDS = ("offsets", "count", "min", "max", "sum", "last")


def decode_rollup(blob: bytes,
                  fields: tuple[str, ...] = ROLLUP_FIELDS) -> tuple[np.ndarray | None, ...]:
    """Inverse of :func:`encode_rollup`: (offsets, count, min, max, sum, last); fields not
    in ``fields`` are left undecoded (None), which saves most of the work for one agg."""
    parts = unpack_parts(blob)
    out: list[np.ndarray | None] = []
    for i, name in enumerate(ROLLUP_FIELDS):
        if name not in fields:
            out.append(None)
        elif i < 2:
            out.append(decode_ints(parts[i]))
        else:
            out.append(decode_values(parts[i]))
    return tuple(out)


# -- tail and minute rows: one node's samples, every series in one row -----------------------
#
# A tail row holds the samples one flush added to a minute that is still open, plain (no
# compression: it lives for under a minute, and encoding it would cost every flush). A
# sealed row holds a whole minute, encoded once when the minute closes: the sample times
# and each series' presence mask and values, through the codecs above.

_TAIL_HEAD = struct.Struct("<II")  # samples, series
_SEALED_HEAD = struct.Struct("<II")  # series, length of the encoded times
_SEALED_SERIES = struct.Struct("<III")  # series id, mask length (0: none), values length


def encode_tail(times: Sequence[int], series_ids: Sequence[int],
                values: Sequence[float]) -> bytes:
    """Samples as taken: times (n, epoch ms), series ids (k) and values series after series
    (k * n), NaN where a series has no value in a sample."""
    n, k = len(times), len(series_ids)
    if len(values) != n * k:
        raise ValueError(f"a tail row needs {n * k} values, got {len(values)}")
    parts = [array("q", times), array("I", series_ids), array("d", values)]
    if sys.byteorder != "little":
        for part in parts:
            part.byteswap()
    return _TAIL_HEAD.pack(n, k) + b"".join(part.tobytes() for part in parts)


def decode_tail(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_tail`: (times, series ids, values)."""
    n, k = _TAIL_HEAD.unpack_from(blob)
    offset = _TAIL_HEAD.size
    times = np.frombuffer(blob, dtype="<i8", count=n, offset=offset).astype(np.int64)
    offset += 8 * n
    sids = np.frombuffer(blob, dtype="<u4", count=k, offset=offset).astype(np.int64)
    offset += 4 * k
    values = np.frombuffer(blob, dtype="<f8", count=k * n, offset=offset).reshape(k, n)
    return times, sids, values


def encode_sealed(ticks: bytes, series: list[tuple[int, bytes | None, bytes]]) -> bytes:
    """A closed minute: the encoded times (:func:`encode_ints`) and, per series, its id,
    its presence mask (:func:`encode_mask`, None when present in every sample) and its
    values (:func:`encode_values`)."""
    head = [_SEALED_HEAD.pack(len(series), len(ticks))]
    body = [ticks]
    for sid, mask, data in series:
        head.append(_SEALED_SERIES.pack(sid, len(mask) if mask else 0, len(data)))
        if mask:
            body.append(mask)
        body.append(data)
    return b"".join(head + body)


def decode_sealed(blob: bytes) -> tuple[np.ndarray, dict[int, tuple[bytes | None, memoryview]]]:
    """Inverse of :func:`encode_sealed`: the times, and per series id its (mask, values)
    still encoded, so a reader decodes only the series it wants."""
    view = memoryview(blob)
    count, ticks_len = _SEALED_HEAD.unpack_from(view)
    offset = _SEALED_HEAD.size + count * _SEALED_SERIES.size
    times = decode_ints(view[offset:offset + ticks_len])
    offset += ticks_len
    series: dict[int, tuple[bytes | None, memoryview]] = {}
    for i in range(count):
        sid, mask_len, data_len = _SEALED_SERIES.unpack_from(
            view, _SEALED_HEAD.size + i * _SEALED_SERIES.size)
        mask = bytes(view[offset:offset + mask_len]) if mask_len else None
        offset += mask_len
        series[sid] = (mask, view[offset:offset + data_len])
        offset += data_len
    return times, series


def encode_samples(times: np.ndarray,
                   values: np.ndarray) -> tuple[bytes, list[tuple[bytes | None, bytes] | None]]:
    """Samples sorted by time (``times``, n) with one row of values per series (k, n; NaN
    where absent): the encoded times, and per row its presence mask (None when present in
    every sample) and values, or None for a row without any value."""
    series: list[tuple[bytes | None, bytes] | None] = []
    for row in values:
        present = ~np.isnan(row)
        count = int(present.sum())
        if not count:
            series.append(None)
            continue
        mask = None if count == row.size else encode_mask(present)
        series.append((mask, encode_values(row[present])))
    return encode_ints(times), series
