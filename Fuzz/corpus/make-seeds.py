#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (Docs/Testing.md, "Fuzzing"):

  ServerMessages/   client byte streams: VERSION, then valid messages of every command
                    (and a few sequences: edu DMA answered by the client, DMA_MAP with a
                    descriptor, eventfds for MSI);
  CapabilityChain/  a mode byte (0 chain, 1 region info, 2 device info, 3 type1 info,
                    4 one capability) and a valid structure with a chain;
  NVMeController/   guest action scripts (Fuzz/NVMeController/main.swift lists the
                    actions): bring-up, Identify, I/O queues, read/write, and bad PRPs,
                    queue ids, doorbells, queue bases.

Run it from anywhere; it rewrites both folders.
"""
import json
import os
import shutil
import struct

here = os.path.dirname(os.path.abspath(__file__))


def reset(name):
    path = os.path.join(here, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


# ---- ServerMessages ---------------------------------------------------------------

REPLY, NO_REPLY = 0x1, 0x10
(VERSION, DMA_MAP, DMA_UNMAP, GET_INFO, GET_REGION_INFO, GET_REGION_IO_FDS, GET_IRQ_INFO,
 SET_IRQS, REGION_READ, REGION_WRITE, DMA_READ, DMA_WRITE, RESET, DIRTY_PAGES,
 WRITE_MULTI, FEATURE, MIG_DATA_READ, MIG_DATA_WRITE) = range(1, 19)
CONFIG, BAR0 = 7, 0
INTX, MSI, MSIX, ERR, REQ = range(5)


class Stream:
    def __init__(self):
        self.bytes = b""
        self.id = 0

    def msg(self, command, payload=b"", flags=0, fds=0, mid=None):
        """fds: the harness sends that many descriptors with the message (header error field)."""
        if mid is None:
            self.id += 1
            mid = self.id
        self.bytes += struct.pack("<HHIII", mid, command, 16 + len(payload), flags, fds) + payload
        return self


def version(caps=None):
    caps = caps if caps is not None else {"capabilities": {"max_msg_fds": 8, "max_data_xfer_size": 1048576}}
    return struct.pack("<HH", 0, 0) + json.dumps(caps, separators=(",", ":")).encode() + b"\0"


def start(caps=None):
    return Stream().msg(VERSION, version(caps))


def dma_map(flags, offset, address, size, argsz=32):
    return struct.pack("<IIQQQ", argsz, flags, offset, address, size)


def dma_unmap(flags, address, size):
    return struct.pack("<IIQQ", 24, flags, address, size)


def access(region, offset, count, data=b""):
    return struct.pack("<QII", offset, region, count) + data


def irq_set(flags, index, start, count, data=b""):
    return struct.pack("<IIIII", 20 + len(data), flags, index, start, count) + data


DATA_NONE, DATA_BOOL, DATA_EVENTFD, ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER = 1, 2, 4, 8, 16, 32


def server_seeds():
    out = reset("ServerMessages")
    seeds = {}
    seeds["version"] = start()
    seeds["version-empty-json"] = start({})
    seeds["version-migration"] = start({"capabilities": {"max_msg_fds": 1, "pgsizes": 4096,
                                                         "migration": {"pgsize": 4096, "max_bitmap_size": 1024},
                                                         "twin_socket": {"supported": False}, "write_multiple": True}})
    seeds["before-version"] = Stream().msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
    seeds["version-twice"] = start().msg(VERSION, version())
    seeds["get-info"] = start().msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
    for index in (BAR0, CONFIG, 2):
        seeds[f"region-info-{index}"] = start().msg(GET_REGION_INFO, struct.pack("<IIIIQQ", 32, 0, index, 0, 0, 0))
    seeds["region-info-big-argsz"] = start().msg(GET_REGION_INFO, struct.pack("<IIIIQQ", 256, 0, BAR0, 0, 0, 0) + bytes(224))
    seeds["region-io-fds"] = start().msg(GET_REGION_IO_FDS, struct.pack("<IIII", 16, 0, BAR0, 0))
    for index in (INTX, MSI, MSIX, ERR, REQ):
        seeds[f"irq-info-{index}"] = start().msg(GET_IRQ_INFO, struct.pack("<IIII", 16, 0, index, 0))
    seeds["set-irqs-eventfd-msi"] = start().msg(SET_IRQS, irq_set(DATA_EVENTFD | ACTION_TRIGGER, MSI, 0, 1), fds=1)
    seeds["set-irqs-eventfd-array"] = start().msg(SET_IRQS, irq_set(DATA_EVENTFD | ACTION_TRIGGER, INTX, 0, 1, struct.pack("<i", 0)), fds=1)
    seeds["set-irqs-none-trigger"] = start().msg(SET_IRQS, irq_set(DATA_NONE | ACTION_TRIGGER, MSI, 0, 0))
    seeds["set-irqs-bool-trigger"] = start().msg(SET_IRQS, irq_set(DATA_EVENTFD | ACTION_TRIGGER, MSI, 0, 1), fds=1) \
                                            .msg(SET_IRQS, irq_set(DATA_BOOL | ACTION_TRIGGER, MSI, 0, 1, b"\1"))
    seeds["set-irqs-intx-mask"] = start().msg(SET_IRQS, irq_set(DATA_NONE | ACTION_MASK, INTX, 0, 1)) \
                                         .msg(SET_IRQS, irq_set(DATA_NONE | ACTION_UNMASK, INTX, 0, 1))
    seeds["read-id"] = start().msg(REGION_READ, access(BAR0, 0, 4))
    seeds["read-config"] = start().msg(REGION_READ, access(CONFIG, 0, 64))
    seeds["write-liveness"] = start().msg(REGION_WRITE, access(BAR0, 4, 4, struct.pack("<I", 0x12345678))) \
                                     .msg(REGION_READ, access(BAR0, 4, 4))
    seeds["write-factorial-no-reply"] = start().msg(REGION_WRITE, access(BAR0, 8, 4, struct.pack("<I", 5)), flags=NO_REPLY) \
                                               .msg(REGION_READ, access(BAR0, 8, 4))
    seeds["raise-irq"] = start().msg(SET_IRQS, irq_set(DATA_EVENTFD | ACTION_TRIGGER, INTX, 0, 1), fds=1) \
                                .msg(REGION_WRITE, access(BAR0, 0x60, 4, struct.pack("<I", 1))) \
                                .msg(REGION_WRITE, access(BAR0, 0x64, 4, struct.pack("<I", 1)))
    seeds["write-multi"] = start().msg(WRITE_MULTI, struct.pack("<Q", 2)
                                       + struct.pack("<QII", 4, BAR0, 4) + struct.pack("<I", 7) + bytes(4)
                                       + struct.pack("<QII", 8, BAR0, 4) + struct.pack("<I", 3) + bytes(4), flags=NO_REPLY)
    seeds["dma-map-message"] = start().msg(DMA_MAP, dma_map(3, 0, 0x100000, 0x1000)) \
                                      .msg(DMA_UNMAP, dma_unmap(0, 0x100000, 0x1000))
    seeds["dma-map-fd"] = start().msg(DMA_MAP, dma_map(3, 0, 0x200000, 0x4000), fds=1) \
                                 .msg(DMA_UNMAP, dma_unmap(2, 0, 0))
    seeds["dma-map-overlap"] = start().msg(DMA_MAP, dma_map(1, 0, 0x100000, 0x2000)) \
                                      .msg(DMA_MAP, dma_map(1, 0, 0x101000, 0x2000))
    s = start()
    for i in range(9):
        s.msg(DMA_MAP, dma_map(3, 0, 0x100000 * (i + 1), 0x1000))
    seeds["dma-map-past-limit"] = s
    seeds["dma-unmap-dirty"] = start().msg(DMA_UNMAP, struct.pack("<IIQQQQ", 40, 1, 0x100000, 0x1000, 4096, 8))
    seeds["reset"] = start().msg(RESET)
    seeds["dirty-pages"] = start().msg(DIRTY_PAGES, struct.pack("<II", 8, 1))
    seeds["feature-probe-migration"] = start().msg(FEATURE, struct.pack("<II", 8, 0x10000 | 1))
    seeds["feature-get-mig-state"] = start().msg(FEATURE, struct.pack("<III", 12, 0x20000 | 2, 0))
    seeds["mig-data-read"] = start().msg(MIG_DATA_READ, struct.pack("<II", 8, 64))
    seeds["mig-data-write"] = start().msg(MIG_DATA_WRITE, struct.pack("<II", 12, 4) + b"abcd")
    seeds["dma-read-from-client"] = start().msg(DMA_READ, struct.pack("<QQ", 0x100000, 4))
    # edu DMA from client memory reached only by messages: the server sends DMA_READ
    # (its id 1) after the reply to the command write; the client's reply follows.
    dma = start().msg(REGION_WRITE, access(CONFIG, 4, 2, struct.pack("<H", 6))) \
                 .msg(DMA_MAP, dma_map(3, 0, 0x100000, 0x1000)) \
                 .msg(REGION_WRITE, access(BAR0, 0x80, 8, struct.pack("<Q", 0x100000))) \
                 .msg(REGION_WRITE, access(BAR0, 0x88, 8, struct.pack("<Q", 0x40000))) \
                 .msg(REGION_WRITE, access(BAR0, 0x90, 8, struct.pack("<Q", 16))) \
                 .msg(REGION_WRITE, access(BAR0, 0x98, 8, struct.pack("<Q", 1 | 4)))
    dma.msg(DMA_READ, struct.pack("<QQ", 0x100000, 16) + bytes(range(16)), flags=REPLY, mid=1)
    dma.msg(REGION_READ, access(BAR0, 0x40000, 16))
    seeds["edu-dma-read-message"] = dma
    dma = start().msg(REGION_WRITE, access(CONFIG, 4, 2, struct.pack("<H", 6))) \
                 .msg(DMA_MAP, dma_map(3, 0, 0x100000, 0x1000)) \
                 .msg(REGION_WRITE, access(BAR0, 0x80, 8, struct.pack("<Q", 0x40000))) \
                 .msg(REGION_WRITE, access(BAR0, 0x88, 8, struct.pack("<Q", 0x100000))) \
                 .msg(REGION_WRITE, access(BAR0, 0x90, 8, struct.pack("<Q", 16))) \
                 .msg(REGION_WRITE, access(BAR0, 0x98, 8, struct.pack("<Q", 1 | 2)))
    dma.msg(DMA_WRITE, struct.pack("<QQ", 0x100000, 16), flags=REPLY, mid=1)
    seeds["edu-dma-write-message"] = dma
    dma = start().msg(REGION_WRITE, access(CONFIG, 4, 2, struct.pack("<H", 6))) \
                 .msg(DMA_MAP, dma_map(3, 0, 0x200000, 0x4000), fds=1) \
                 .msg(REGION_WRITE, access(BAR0, 0x80, 8, struct.pack("<Q", 0x40000))) \
                 .msg(REGION_WRITE, access(BAR0, 0x88, 8, struct.pack("<Q", 0x200000))) \
                 .msg(REGION_WRITE, access(BAR0, 0x90, 8, struct.pack("<Q", 64))) \
                 .msg(REGION_WRITE, access(BAR0, 0x98, 8, struct.pack("<Q", 1 | 2 | 4)))
    seeds["edu-dma-mapped-fd"] = dma
    seeds["header-size-lies-small"] = start().msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
    seeds["header-size-lies-small"].bytes += struct.pack("<HHIII", 9, GET_INFO, 8, 0, 0)
    seeds["header-too-big"] = start()
    seeds["header-too-big"].bytes += struct.pack("<HHIII", 9, REGION_WRITE, 64 << 10, 0, 0) + bytes(64)
    seeds["unknown-command"] = start().msg(99, b"\1\2\3\4")
    seeds["bad-type"] = start().msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0), flags=3)
    seeds["fds-on-get-info"] = start().msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0), fds=1)
    seeds["too-many-fds"] = start().msg(SET_IRQS, irq_set(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 5), fds=7)
    seeds["unexpected-reply"] = start().msg(DMA_READ, struct.pack("<QQ", 0, 0), flags=REPLY, mid=77)
    for name, stream in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(stream.bytes)
    return len(seeds)


# ---- CapabilityChain --------------------------------------------------------------

def chain(caps, base):
    """caps: (id, version, body); returns the chain laid out from `base` (8-aligned)."""
    out = b""
    for i, (cid, ver, body) in enumerate(caps):
        size = (8 + len(body) + 7) & ~7
        nxt = 0 if i == len(caps) - 1 else base + len(out) + size
        out += struct.pack("<HHI", cid, ver, nxt) + body + bytes(size - 8 - len(body))
    return out


def chain_seeds():
    out = reset("CapabilityChain")
    seeds = {}
    caps = [(1, 1, bytes(range(8))), (7, 2, bytes(3)), (2, 1, struct.pack("<II", 1, 2))]
    body = chain(caps, 32)
    seeds["chain"] = bytes([0]) + struct.pack("<BBHH", 0, 32, 32, 32 + len(body)) + bytes(32) + body
    seeds["chain-offset-start"] = bytes([0]) + struct.pack("<BBHH", 3, 20, 24, 24 + 16) + bytes(3) + bytes(24) + chain([(5, 1, bytes(8))], 24)
    seeds["chain-loop"] = bytes([0]) + struct.pack("<BBHH", 0, 8, 8, 64) + bytes(8) + struct.pack("<HHI", 1, 1, 8) + bytes(48)
    seeds["chain-none"] = bytes([0]) + struct.pack("<BBHH", 0, 8, 0, 8) + bytes(8)

    def region(flags, caps):
        c = chain(caps, 32)
        return struct.pack("<IIIIQQ", 32 + len(c), flags | (8 if caps else 0), 0, 32 if caps else 0, 0x1000, 0) + c
    seeds["region-plain"] = bytes([1]) + region(3, [])
    seeds["region-sparse"] = bytes([1]) + region(7, [(1, 1, struct.pack("<II", 2, 0) + struct.pack("<QQ", 0, 0x1000) + struct.pack("<QQ", 0x2000, 0x1000))])
    seeds["region-type-msix"] = bytes([1]) + region(3, [(2, 1, struct.pack("<II", 0x80000000 | 0x8086, 1)), (3, 1, b"")])
    seeds["region-nvlink"] = bytes([1]) + region(3, [(4, 1, struct.pack("<Q", 0xdead000)), (5, 1, struct.pack("<II", 9, 0))])
    seeds["region-caps-omitted"] = bytes([1]) + struct.pack("<IIIIQQ", 128, 8, 0, 0, 0, 0)

    def device(caps):
        c = chain(caps, 24)
        return struct.pack("<IIIIII", 24 + len(c), 2 | (0x80 if caps else 0), 9, 5, 24 if caps else 0, 0) + c
    seeds["device-plain"] = bytes([2]) + device([])
    seeds["device-zpci"] = bytes([2]) + device([(1, 1, bytes(32)), (2, 1, bytes(24)), (3, 1, struct.pack("<I", 4) + b"abcd"),
                                               (4, 1, struct.pack("<I", 3) + b"pfp")])
    seeds["device-atomic"] = bytes([2]) + device([(5, 1, struct.pack("<II", 7, 0))])

    def type1(caps):
        c = chain(caps, 24)
        return struct.pack("<IIQII", 24 + len(c), 1 | (2 if caps else 0), 0x1000, 24 if caps else 0, 0) + c
    seeds["type1-plain"] = bytes([3]) + type1([])
    seeds["type1-ranges"] = bytes([3]) + type1([(1, 1, struct.pack("<II", 2, 0) + struct.pack("<QQ", 0, 0xfedfffff) + struct.pack("<QQ", 0xfef00000, 2**64 - 1))])
    seeds["type1-migration-avail"] = bytes([3]) + type1([(2, 1, struct.pack("<IIQQ", 0, 0, 0x1000, 256 << 20)), (3, 1, struct.pack("<II", 65535, 0))])
    seeds["cap-sparse"] = bytes([4]) + struct.pack("<HH", 1, 1) + struct.pack("<II", 1, 0) + struct.pack("<QQ", 0, 0x1000)
    seeds["cap-iova"] = bytes([4]) + struct.pack("<HH", 1, 1) + struct.pack("<II", 1, 0) + struct.pack("<QQ", 0, 0xffff)
    seeds["cap-type"] = bytes([4]) + struct.pack("<HH", 2, 1) + struct.pack("<II", 1, 1)
    seeds["cap-zpci-base-v2"] = bytes([4]) + struct.pack("<HH", 1, 2) + bytes(40)
    seeds["cap-migration"] = bytes([4]) + struct.pack("<HH", 2, 1) + struct.pack("<IIQQ", 0, 0, 0x1000, 1 << 20)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return len(seeds)


# ---- NVMeController ---------------------------------------------------------------

# Guest memory (64 KiB at IOVA 0): admin SQ 0x1000, admin CQ 0x2000, Identify data
# 0x3000, I/O CQ 0x4000, I/O SQ 0x5000, PRP list 0x6000, data from 0x8000.
ASQ, ACQ, IDENT, IOCQ, IOSQ, PRPLIST, DATA = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x8000
OUTSIDE = 0x1000_0000


def bar_write32(offset, value):
    return struct.pack("<BHI", 0, offset, value)


def bar_write64(offset, value):
    return struct.pack("<BHQ", 1, offset, value)


def bar_read(offset, width):
    return struct.pack("<BHB", 2, offset, width - 1)


def memory(address, data):
    return struct.pack("<BIB", 4, address, len(data)) + data


def command(address, opcode, cid, nsid=0, prp1=0, prp2=0, cdw=(0, 0, 0, 0, 0, 0)):
    entry = struct.pack("<BBHIQQQQ6I", opcode, 0, cid, nsid, 0, 0, prp1, prp2, *cdw)
    assert len(entry) == 64
    return struct.pack("<BI", 5, address) + entry


def doorbell(queue, completion, value):
    return struct.pack("<BBBI", 6, queue, completion, value)


def config_write(offset, data):
    return struct.pack("<BHB", 7, offset, len(data) - 1) + data


def enable(asq=ASQ, acq=ACQ, entries=8):
    return (config_write(0x04, struct.pack("<H", 0x0006))             # memory space, bus master
            + bar_write32(0x24, (entries - 1) << 16 | (entries - 1))  # AQA
            + bar_write64(0x28, asq) + bar_write64(0x30, acq)
            + bar_write32(0x14, 0x0046_0001)                          # CC: EN, IOSQES 6, IOCQES 4
            + bar_read(0x1C, 4))                                      # CSTS


def io_queue_pair(first_slot=0, qid=1, entries=16):
    slot = first_slot
    script = b""
    for opcode, base, cdw11 in ((0x05, IOCQ, 0x3), (0x01, IOSQ, qid << 16 | 0x1)):
        script += command(ASQ + 64 * slot, opcode, 0x100 + slot, prp1=base,
                          cdw=((entries - 1) << 16 | qid, cdw11, 0, 0, 0, 0))
        slot += 1
    return script + doorbell(0, 0, slot) + doorbell(0, 1, slot)


def nvme_seeds():
    out = reset("NVMeController")
    seeds = {}
    bring_up = (enable()
                + command(ASQ, 0x06, 1, prp1=IDENT, cdw=(1, 0, 0, 0, 0, 0))               # Identify controller
                + command(ASQ + 64, 0x06, 2, nsid=1, prp1=IDENT, cdw=(0, 0, 0, 0, 0, 0))  # Identify namespace 1
                + command(ASQ + 128, 0x09, 3, cdw=(0x07, 3 << 16 | 3, 0, 0, 0, 0))         # Number of Queues
                + doorbell(0, 0, 3) + doorbell(0, 1, 3))
    seeds["identify"] = bring_up
    # I/O queue pair 1 from admin slots 3 and 4, then write 4 KiB, read it back, and a
    # 16 KiB write through a PRP list.
    io = enable() + io_queue_pair(0) + memory(DATA, bytes(range(200)))
    io += command(IOSQ, 0x01, 1, nsid=1, prp1=DATA, cdw=(0, 0, 7, 0, 0, 0))
    io += command(IOSQ + 64, 0x02, 2, nsid=1, prp1=DATA + 0x1000, cdw=(0, 0, 7, 0, 0, 0))
    io += memory(PRPLIST, struct.pack("<3Q", DATA + 0x3000, DATA + 0x4000, DATA + 0x5000))
    io += command(IOSQ + 128, 0x01, 3, nsid=1, prp1=DATA + 0x2000, prp2=PRPLIST, cdw=(8, 0, 31, 0, 0, 0))
    io += command(IOSQ + 192, 0x00, 4, nsid=1)                                           # Flush
    io += doorbell(1, 0, 4) + doorbell(1, 1, 4)
    io += bar_write32(0x14, 0x0046_4001) + bar_read(0x1C, 4)                             # CC.SHN normal
    seeds["io-read-write"] = io
    # A PRP list outside memory, one with entries outside memory, one not page aligned,
    # and a PRP1 with an offset into a second page with PRP2 pointing nowhere.
    bad = enable() + io_queue_pair(0)
    bad += command(IOSQ, 0x01, 1, nsid=1, prp1=DATA, prp2=OUTSIDE, cdw=(0, 0, 31, 0, 0, 0))
    bad += memory(PRPLIST, struct.pack("<3Q", OUTSIDE, DATA + 0x123, 0xFFFF_FFFF_FFFF_F000))
    bad += command(IOSQ + 64, 0x02, 2, nsid=1, prp1=DATA, prp2=PRPLIST, cdw=(0, 0, 31, 0, 0, 0))
    bad += command(IOSQ + 128, 0x02, 3, nsid=1, prp1=DATA + 0x10, prp2=PRPLIST + 0xFF8, cdw=(0, 0, 31, 0, 0, 0))
    bad += command(IOSQ + 192, 0x02, 4, nsid=1, prp1=DATA + 0xE00, prp2=OUTSIDE + 3, cdw=(0, 0, 7, 0, 0, 0))
    bad += command(IOSQ + 256, 0x01, 5, nsid=1, prp1=DATA, cdw=(0xFFFF_FFF0, 0xFFFF_FFFF, 0xFFFF, 0, 0, 0))  # LBA past the end
    bad += doorbell(1, 0, 5) + doorbell(1, 1, 5)
    seeds["bad-prp-list"] = bad
    # Queue ids: create CQ 200 and 0xFFFF, SQ 0, an SQ on a CQ that does not exist,
    # delete SQ 9 and CQ 0, then doorbells of queues that do not exist.
    ids = enable()
    for slot, (opcode, cdw10, cdw11) in enumerate(((0x05, 15 << 16 | 200, 1), (0x05, 15 << 16 | 0xFFFF, 1),
                                                   (0x01, 15 << 16 | 0, 1 << 16 | 1), (0x01, 15 << 16 | 2, 7 << 16 | 1),
                                                   (0x00, 9, 0), (0x04, 0, 0), (0x05, 0xFFFF << 16 | 1, 1))):
        ids += command(ASQ + 64 * slot, opcode, 0x200 + slot, prp1=IOCQ, cdw=(cdw10, cdw11, 0, 0, 0, 0))
    ids += doorbell(0, 0, 7) + doorbell(9, 0, 1) + doorbell(200, 1, 1) + doorbell(0, 1, 7)
    seeds["queue-id-out-of-range"] = ids
    # Doorbell values past the queue size (admin SQ of 8 entries, I/O SQ of 16).
    past = enable() + io_queue_pair(0)
    past += doorbell(0, 0, 100) + doorbell(0, 1, 0xFFFF_FFFF) + doorbell(1, 0, 5000) + doorbell(1, 1, 16)
    seeds["doorbell-past-size"] = past
    # Admin queues outside memory, then a reset and the same with unaligned bases.
    seeds["admin-queue-outside"] = (enable(asq=OUTSIDE, acq=OUTSIDE + 0x1000) + doorbell(0, 0, 1)
                                    + bytes([9]) + enable(asq=ASQ + 8, acq=ACQ) + doorbell(0, 0, 1))
    # MSI-X on (capability at 0x48 after PM at 0x40), vector 0 masked in the table, then
    # Doorbell Buffer Config (shadow 0xE000, EventIdx 0xF000) and I/O through the shadow.
    dbbc = config_write(0x4A, struct.pack("<H", 0x8000)) + struct.pack("<BBB", 10, 2, 5)
    dbbc += bar_write32(0x2000 + 12, 1) + enable() + io_queue_pair(0)
    dbbc += command(ASQ + 128, 0x7C, 3, prp1=0xE000, prp2=0xF000) + doorbell(0, 0, 3) + doorbell(0, 1, 3)
    dbbc += command(IOSQ, 0x01, 1, nsid=1, prp1=DATA, cdw=(0, 0, 0, 0, 0, 0))
    dbbc += memory(0xE000 + 8, struct.pack("<I", 1)) + doorbell(1, 0, 1)
    dbbc += struct.pack("<BBBB", 11, 2, 0, 0)
    seeds["msix-shadow-doorbells"] = dbbc
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return len(seeds)


if __name__ == "__main__":
    print("ServerMessages:", server_seeds(), "seeds")
    print("CapabilityChain:", chain_seeds(), "seeds")
    print("NVMeController:", nvme_seeds(), "seeds")
