"""The kernel side of the fleet benchmark: when each namespace's nf_tables holds an element.

One NETLINK_NETFILTER socket per namespace, subscribed to the nf_tables multicast group, opened
from a short-lived thread that enters the namespace (a socket stays in the namespace it was made
in). One listener thread, raised to SCHED_FIFO so a loaded machine delays it as little as it can,
waits on all of them with epoll and stamps each batch of messages with CLOCK_MONOTONIC (the clock
the watchers' --trace uses) on waking, before it parses anything. The kernel sends a NEWSETELEM
notification after the transaction that added the element commits: from then on the kernel
enforces it.
"""

import ctypes
import os
import selectors
import socket
import struct
import threading
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWSETELEM = 12
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY = 1
NFTA_DATA_VALUE = 1
CLONE_NEWNET = 0x40000000
NLA_TYPE_MASK = 0x3FFF

libc = ctypes.CDLL(None, use_errno=True)


def netfilter_socket(namespace):
    """A NETLINK_NETFILTER socket in /run/netns/<namespace>, subscribed to nf_tables events."""
    result = {}

    def enter_and_open():
        # setns changes only this thread's namespace; the thread ends right after.
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {namespace}")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: a full apply's burst
            s.bind((0, 0))
            s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
            s.setblocking(False)
            result["socket"] = s
        except BaseException as e:
            result["error"] = e

    t = threading.Thread(target=enter_and_open)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["socket"]


def attributes(data):
    """(type, payload) of each netlink attribute in data."""
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


def new_elements(data):
    """(set name, key bytes) of every element added by the NEWSETELEM messages in data."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM:
            body = data[offset + 20:offset + length]  # after nlmsghdr (16) and nfgenmsg (4)
            name, elements = None, b""
            for t, payload in attributes(body):
                if t == NFTA_SET_ELEM_LIST_SET:
                    name = payload.rstrip(b"\0").decode(errors="replace")
                elif t == NFTA_SET_ELEM_LIST_ELEMENTS:
                    elements = payload
            for t, element in attributes(elements):
                if t != NFTA_LIST_ELEM:
                    continue
                for kt, key in attributes(element):
                    if kt == NFTA_SET_ELEM_KEY:
                        for vt, value in attributes(key):
                            if vt == NFTA_DATA_VALUE:
                                yield name, bytes(value)
        offset += (length + 3) & ~3


class Listener:
    """Watches every namespace's nf_tables events; `expect` arms a round, `arrivals` reads it."""

    def __init__(self, namespaces):
        self.sockets = [netfilter_socket(ns) for ns in namespaces]
        self.lock = threading.Lock()
        self.pending = {}   # vm index -> {(set, key)} not seen yet
        self.arrived = {}   # vm index -> {(set, key): monotonic time}
        self.overruns = 0
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        for i, s in enumerate(self.sockets):
            self.selector.register(s, selectors.EVENT_READ, i)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def expect(self, wanted):
        """wanted: (set name, key bytes) every namespace must gain."""
        with self.lock:
            self.pending = {i: set(wanted) for i in range(len(self.sockets))}
            self.arrived = {i: {} for i in range(len(self.sockets))}

    def done(self):
        with self.lock:
            return all(not left for left in self.pending.values())

    def arrivals(self):
        with self.lock:
            return {i: dict(a) for i, a in self.arrived.items()}, {i: set(p) for i, p in self.pending.items()}

    def loop(self):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except OSError:
            pass  # not allowed: the measurement is then only as prompt as the scheduler makes it
        while not self.stopping:
            for key, _ in self.selector.select(0.2):
                now = time.monotonic()
                s, i = key.fileobj, key.data
                while True:
                    try:
                        data = s.recv(1 << 20)
                    except BlockingIOError:
                        break
                    except OSError:
                        # ENOBUFS: the burst outran the buffer (a daemon's first apply); the
                        # round's elements come in small transactions later.
                        self.overruns += 1
                        continue
                    with self.lock:
                        left = self.pending.get(i)
                        if not left:
                            continue
                        for element in new_elements(data):
                            if element in left:
                                left.discard(element)
                                self.arrived[i][element] = now

    def close(self):
        self.stopping = True
        self.thread.join(2)
        for s in self.sockets:
            s.close()
