"""Sample arrays that a block's worker process can read where they lie: blocks of Linux
shared memory (memfd) that ``empty`` hands out, each back in the pool once the last array
viewing it goes. A source that reads its chunks into them (``file_io.RawReader``) lets a
block that sends its input to a process of its own (``process_worker``) name the block and
an offset (``locate``) instead of copying the samples; any other block sees plain arrays.

Blocks are kept by size (a source's chunks are all one size) and never unmapped; an
array under MIN_BYTES (a copy of it costs little), one past LIMIT bytes or MAX_BLOCKS
blocks in all (a file each), or one where memfd is missing is ``np.empty``'s."""
from __future__ import annotations

import math
import mmap
import os
import threading

import numpy as np

#: the most memory the pool holds (a graph's chunks in flight, with room to spare) and
#: the most blocks; the least an array takes to get one
LIMIT = 256 << 20
MAX_BLOCKS = 64
MIN_BYTES = 1 << 20


def anonymous_file(size: int, name: str) -> tuple[int, mmap.mmap]:
    """``size`` bytes of a new anonymous file (Linux's memfd, freed when the last process
    that maps or holds it lets go): its descriptor, which maps it elsewhere, and its map
    here."""
    fd = os.memfd_create(name)
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


class Block:
    """``size`` bytes of an anonymous file, mapped here; ``fd`` maps it elsewhere."""

    def __init__(self, size: int, number: int):
        self.size, self.number, self.pid = size, number, os.getpid()
        self.fd, self.map = anonymous_file(size, f"cvstream-shared-{number}")
        self.address = np.frombuffer(self.map, np.uint8).ctypes.data


class _Lease:
    """An array's hold on its block (the array's base): the block goes back to the pool
    when it goes."""
    __slots__ = ("block", "__array_interface__")

    def __init__(self, block: Block, shape: tuple, dtype: np.dtype):
        self.block = block
        self.__array_interface__ = {"data": (block.address, False), "shape": shape,
                                    "typestr": dtype.str, "version": 3}

    def __del__(self):
        _pool.release(self.block)


class _Pool:
    def __init__(self):
        self.lock = threading.RLock()   # (a lease may go inside a call that holds it)
        self.free: dict[int, list[Block]] = {}
        self.blocks: list[Block] = []
        self.total = 0

    def take(self, nbytes: int) -> Block | None:
        with self.lock:
            free = self.free.get(nbytes)
            if free:
                return free.pop()
            if self.total + nbytes > LIMIT or len(self.blocks) >= MAX_BLOCKS:
                return None
            block = Block(nbytes, len(self.blocks))
            self.blocks.append(block)
            self.total += nbytes
            return block

    def release(self, block: Block) -> None:
        if block.pid == os.getpid():   # (a forked child leaves its parent's blocks be)
            with self.lock:
                self.free.setdefault(block.size, []).append(block)

    def reset(self) -> None:
        self.__init__()


_pool = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.reset)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialized array, as ``np.empty``, in a block of shared memory where it is
    MIN_BYTES or more and the pool has room (numpy's own otherwise)."""
    dtype = np.dtype(dtype)
    nbytes = (shape if isinstance(shape, int) else math.prod(shape)) * dtype.itemsize
    block = _pool.take(nbytes) if nbytes >= MIN_BYTES and hasattr(os, "memfd_create") \
        else None
    if block is None:
        return np.empty(shape, dtype)
    return np.asarray(_Lease(block, (shape,) if isinstance(shape, int) else tuple(shape),
                             dtype))


def locate(x: np.ndarray) -> tuple[Block, int] | None:
    """The block of shared memory that holds the contiguous array ``x`` and where in it
    (bytes), or None where x lies elsewhere. The block stays x's while x is alive."""
    if not x.flags.c_contiguous or not _pool.blocks:
        return None
    address = x.ctypes.data
    with _pool.lock:
        for block in _pool.blocks:
            if block.address <= address and address + x.nbytes <= block.address + block.size:
                return block, address - block.address
    return None
