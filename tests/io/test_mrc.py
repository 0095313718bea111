"""The MRC reader: round trip, an FEI-style extended header, and malformed files."""

import numpy as np
import pytest

from chemtomo.core.errors import InputError
from chemtomo.io.mrc import read_mrc, write_mrc


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_round_trip(tmp_path, dtype):
    a = (np.arange(3 * 5 * 7).reshape(3, 5, 7) - 20).astype(dtype)
    p = write_mrc(tmp_path / "s.mrc", a, pixel_A=33.6, labels=["test stack"])
    m = read_mrc(p)
    assert m.data.dtype == np.dtype(dtype) and m.data.shape == (3, 5, 7)
    np.testing.assert_array_equal(m.data, a)
    np.testing.assert_allclose(m.pixel_A, 33.6, rtol=1e-6)
    assert m.labels == ["test stack"] and m.extended == b""


def _fei_like(tmp_path, nsymbt=256, stamp=b"\x00\x00", endian="<"):
    """A header as FEI software writes it: no 'MAP ' tag, no machine stamp, an extended header."""
    a = np.arange(2 * 4 * 6, dtype=endian + "i2").reshape(2, 4, 6)
    ints = np.zeros(56, endian + "i4")
    ints[:4] = 6, 4, 2, 1
    ints[7:10] = 6, 4, 2
    ints[23] = nsymbt
    h = bytearray(ints.tobytes()).ljust(1024, b"\x00")
    h[212:214] = stamp
    p = tmp_path / "fei.mrc"
    p.write_bytes(bytes(h) + b"\x01" * nsymbt + a.tobytes())
    return p, a


def test_extended_header_and_no_stamp(tmp_path):
    p, a = _fei_like(tmp_path)
    m = read_mrc(p)
    np.testing.assert_array_equal(m.data, a)
    assert len(m.extended) == 256 and np.isnan(m.pixel_A).all()  # cell size 0: unknown


def test_big_endian_without_stamp(tmp_path):
    p, a = _fei_like(tmp_path, endian=">")
    np.testing.assert_array_equal(read_mrc(p).data, a)


def test_malformed(tmp_path):
    short = tmp_path / "short.mrc"
    short.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="shorter than the 1024-byte MRC header"):
        read_mrc(short)
    p, _ = _fei_like(tmp_path)
    raw = p.read_bytes()
    trunc = tmp_path / "trunc.mrc"
    trunc.write_bytes(raw[:-10])
    with pytest.raises(InputError, match="trunc.mrc.*truncated"):
        read_mrc(trunc)
    bad_mode = bytearray(raw)
    bad_mode[12:16] = np.int32(5).tobytes()
    (tmp_path / "mode.mrc").write_bytes(bytes(bad_mode))
    with pytest.raises(InputError, match="mode = 5"):
        read_mrc(tmp_path / "mode.mrc")
    zero = bytearray(raw)
    zero[0:4] = np.int32(0).tobytes()
    zero[212:214] = b"\x44\x44"
    (tmp_path / "zero.mrc").write_bytes(bytes(zero))
    with pytest.raises(InputError, match="nx = 0"):
        read_mrc(tmp_path / "zero.mrc")
    with pytest.raises(InputError, match="no such MRC file"):
        read_mrc(tmp_path / "missing.mrc")
