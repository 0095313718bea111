"""A minimal writer of OLE2 / Compound File Binary files (MS-CFB, version 3), for tests only.

olefile reads compound files but cannot create them, so the Xradia tests write their own
``.txrm`` containers here, following [MS-CFB] (Microsoft Open Specifications, "Compound File
Binary File Format"): 512-byte sectors, one FAT (no DIFAT: files up to ~7 MB), streams under 4096
bytes in the mini stream (64-byte mini sectors chained by the MiniFAT), a directory of 128-byte
entries. Siblings are chained through their right-sibling links (a valid, if unbalanced, tree;
all entries black), which readers walk the same way as a balanced one.
"""

import struct

SECTOR, MINI, CUTOFF = 512, 64, 4096
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _pad(data: bytes, size: int) -> bytes:
    return data + b"\0" * (-len(data) % size)


def write_cfb(path, streams: dict[str, bytes]) -> None:
    """Write ``{"Storage/Sub/Stream": bytes}`` as a compound file at ``path``."""
    # directory tree: every storage along each path, then the streams
    entries = [{"name": "Root Entry", "type": 5, "kids": []}]
    index = {"": 0}
    for full in streams:
        parts = full.split("/")
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            if key not in index:
                index[key] = len(entries)
                entries.append({"name": parts[depth - 1], "type": 2 if depth == len(parts) else 1, "kids": []})
                entries[index["/".join(parts[:depth - 1])]]["kids"].append(index[key])
    sectors, fat = [], []

    def chain(data: bytes, table: list, unit: int, store: list) -> int:
        if not data:
            return END
        start = len(table)
        n = -(-len(data) // unit)
        table.extend(list(range(start + 1, start + n)) + [END])
        store.extend(_pad(data, unit)[i * unit:(i + 1) * unit] for i in range(n))
        return start

    minifat, ministore = [], []
    for full, data in streams.items():
        e = entries[index[full]]
        e["size"] = len(data)
        if len(data) < CUTOFF:
            e["start"] = chain(data, minifat, MINI, ministore)
        else:
            e["start"] = chain(data, fat, SECTOR, sectors)
    mini = b"".join(ministore)
    entries[0]["start"], entries[0]["size"] = chain(mini, fat, SECTOR, sectors), len(mini)
    minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
    first_minifat = chain(minifat_bytes, fat, SECTOR, sectors) if minifat else END
    n_minifat = -(-len(minifat_bytes) // SECTOR)
    for e in entries:  # siblings chained through their right-sibling links
        for a, b in zip(e["kids"], e["kids"][1:]):
            entries[a]["right"] = b
    dir_bytes = b""
    for e in entries:
        name = e["name"].encode("utf-16-le") + b"\0\0"
        dir_bytes += struct.pack("<64sHBBIII16sIQQIQ", name, len(name), e["type"], 1, NOSTREAM,
                                 e.get("right", NOSTREAM), e["kids"][0] if e["kids"] else NOSTREAM, b"\0" * 16,
                                 0, 0, 0, e.get("start", END) if e["type"] != 1 else 0, e.get("size", 0))
    first_dir = chain(_pad(dir_bytes, SECTOR), fat, SECTOR, sectors)
    n_fat = 1
    while len(fat) + n_fat > n_fat * (SECTOR // 4):
        n_fat += 1
    assert n_fat <= 109, "file too large for a FAT without DIFAT"
    fat_start = len(fat)
    fat.extend([FATSECT] * n_fat)
    fat.extend([FREE] * (n_fat * (SECTOR // 4) - len(fat)))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    sectors.extend(fat_bytes[i * SECTOR:(i + 1) * SECTOR] for i in range(n_fat))
    difat = [fat_start + i for i in range(n_fat)] + [FREE] * (109 - n_fat)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
              + struct.pack("<HHHHH6xIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, 0, n_fat, first_dir, 0, CUTOFF,
                            first_minifat, n_minifat, END, 0)
              + b"".join(struct.pack("<I", v) for v in difat))
    assert len(header) == SECTOR
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(b"".join(sectors))
