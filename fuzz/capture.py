#!/usr/bin/python3
"""Records kernel netlink bytes for the fuzz seed corpus (fuzz/README.md). Run as root inside a
network namespace of your own (it reads or joins that namespace's nf_tables and nfnetlink_log):

  capture.py dump TABLE FILE          the replies to the chain, set, element and rule dumps of the
                                      inet table TABLE, as one file of netlink messages
  capture.py nflog GROUP DIR COUNT    up to COUNT nfnetlink_log datagrams of GROUP (until 3 s pass
                                      without one), one file each; the group is configured as
                                      fwenforcerd's receiver configures it

Standard library only: raw AF_NETLINK sockets, the message layouts of <linux/netlink.h>,
<linux/netfilter/nf_tables.h> and <linux/netfilter/nfnetlink_log.h>.
"""

import os
import socket
import struct
import sys

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFPROTO_INET = 1
NFTABLES = 10 << 8  # NFNL_SUBSYS_NFTABLES
GETCHAIN, GETRULE, NEWSET, GETSET, GETSETELEM = 4, 7, 9, 10, 13
ULOG_CONFIG = 4 << 8 | 1  # NFNL_SUBSYS_ULOG, NFULNL_MSG_CONFIG


def attribute(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(kind, flags, seq, family, res_id, attributes=b""):
    body = struct.pack("!BBH", family, 0, res_id) + attributes
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def split(datagram):
    offset = 0
    while offset + 16 <= len(datagram):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", datagram, offset)
        if length < 16:
            return
        yield kind, seq, datagram[offset:offset + length]
        offset += (length + 3) & ~3


def attributes(payload):
    offset, out = 0, {}
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        out[kind & 0x3FFF] = payload[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def dump(sock, seq, kind, attrs):
    """Every reply message of one dump, DONE and ACKs left out."""
    sock.send(message(NFTABLES | kind, NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_INET, 0, attrs))
    out = []
    while True:
        for mkind, mseq, m in split(sock.recv(1 << 20)):
            if mseq != seq:
                continue
            if mkind == NLMSG_DONE:
                return out
            if mkind == NLMSG_ERROR:
                error = struct.unpack_from("=i", m, 16)[0]
                if error:
                    raise OSError(-error, os.strerror(-error))
                continue
            out.append(m)


def capture_dump(table, path):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    name = attribute(1, table.encode() + b"\0")  # NFTA_{CHAIN,SET,RULE}_TABLE
    messages = dump(sock, 1, GETCHAIN, name)
    sets = dump(sock, 2, GETSET, name)
    messages += sets
    for seq, m in enumerate(sets, start=3):
        set_name = attributes(m[20:])[2]  # NFTA_SET_NAME
        messages += dump(sock, seq, GETSETELEM, name + attribute(2, set_name))  # NFTA_SET_ELEM_LIST_SET
    messages += dump(sock, 1000, GETRULE, name)
    with open(path, "wb") as f:
        f.write(b"".join(m + b"\0" * (-len(m) % 4) for m in messages))


def capture_nflog(group, directory, count):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    config = (attribute(1, bytes([1]))  # NFULA_CFG_CMD: NFULNL_CFG_CMD_BIND
              + attribute(2, struct.pack("!IBB", 256, 2, 0))  # NFULA_CFG_MODE: 256 bytes, NFULNL_COPY_PACKET
              + attribute(6, struct.pack("!H", 1))  # NFULA_CFG_FLAGS: NFULNL_CFG_F_SEQ
              + attribute(5, struct.pack("!I", 64))  # NFULA_CFG_QTHRESH
              + attribute(4, struct.pack("!I", 10)))  # NFULA_CFG_TIMEOUT, 1/100 s
    sock.send(message(ULOG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 1, socket.AF_UNSPEC, group, config))
    for kind, _, m in split(sock.recv(65536)):
        if kind == NLMSG_ERROR and struct.unpack_from("=i", m, 16)[0]:
            raise OSError(-struct.unpack_from("=i", m, 16)[0], "nfnetlink_log bind")
    print("bound", flush=True)
    # Until COUNT datagrams, or 3 s without one.
    sock.settimeout(3)
    for n in range(count):
        try:
            datagram = sock.recv(1 << 20)
        except socket.timeout:
            break
        with open(os.path.join(directory, f"datagram-{n}.bin"), "wb") as f:
            f.write(datagram)


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"] and len(sys.argv) == 4:
        capture_dump(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["nflog"] and len(sys.argv) == 5:
        capture_nflog(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
