#!/usr/bin/env python3
"""Traffic probe for fwenforcer's end-to-end tests (python3 standard library only).

Runs inside a lab VM's network namespace (the harness starts it with nsenter):

  probe.py listen --name NAME --tcp 22,80 --udp 5405
      Binds every port on IPv4 and IPv6 (wildcard addresses). TCP: on accept, write "NAME\\n", then
      echo every line back until the peer closes. UDP: answer each datagram with "NAME", from the
      address it was sent to (IP_PKTINFO), so replies match the client's conntrack entry even for
      secondary addresses. Prints "READY" once all ports are bound. Exits when stdin reaches EOF
      (the harness holds the other end; if the harness dies, so do its listeners) or on SIGTERM.

  probe.py connect < probes.json > results.json
      probes: [{"id": 1, "proto": "tcp"|"udp", "src": ADDR, "dst": ADDR, "port": N,
                "timeout": SECONDS, "attempts": N (udp), "token": EXPECTED-NAME}]
      Runs all probes concurrently (bounded) and prints one JSON list of
      {"id", "result", "detail", "ms"}; result is one of
        ok        the listener answered (with the expected token)
        wrong     a listener answered, but with another token (reached the wrong host)
        connected TCP handshake completed but no token arrived in time
        refused   RST / ICMP port unreachable: the packet reached a host with nothing listening
        timeout   no answer: dropped on the way (what a firewall drop looks like from the source)
        eperm     the local output hook dropped it (sendmsg/connect returned EPERM)
        error     anything else (detail says what)

  probe.py guard -- COMMAND [ARG...]
      Runs COMMAND and stops it (SIGTERM, then SIGKILL after 1 s) when stdin reaches EOF or on
      SIGTERM/SIGINT; exits with its status. The harness runs daemons under it, so a daemon dies
      with the test process even when that crashes before its cleanup.

  probe.py hold --src ADDR --dst ADDR --port N [--interval S] [--duration S]
      Opens one TCP connection and keeps it busy: every interval, send a line and wait for its echo.
      Prints one JSON object per line: {"event": "connected"|"echo"|"closed"|"error", "ok": bool,
      "t": unix-time, "seq": n}. Used to show that an established connection stops passing data.
"""

import argparse
import asyncio
import errno
import ipaddress
import json
import os
import resource
import signal
import socket
import struct
import sys
import time

IP_PKTINFO = 8  # Linux <netinet/in.h>; not exported by the socket module before Python 3.12

# ---------------------------------------------------------------------------------------------------
# listen


def watch_stdin(loop, callback):
    """Calls back when stdin is readable; a stdin that cannot be polled (/dev/null) is not watched."""
    try:
        loop.add_reader(0, callback)
    except (PermissionError, ValueError):
        pass


def parse_ports(text):
    ports = []
    for part in (text or "").split(","):
        if part.strip():
            ports.append(int(part))
    return sorted(set(ports))


class UDPEcho:
    """One UDP socket; answers from the address each request was sent to."""

    def __init__(self, loop, family, port, token):
        self.family = family
        self.token = token
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            self.sock.bind(("::", port))
        else:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self.sock.bind(("0.0.0.0", port))
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self.on_readable)

    def on_readable(self):
        while True:
            try:
                data, anc, _flags, peer = self.sock.recvmsg(2048, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            cmsgs = []
            for level, ctype, cdata in anc:
                if self.family == socket.AF_INET and level == socket.IPPROTO_IP and ctype == IP_PKTINFO:
                    # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }: reply from addr.
                    ifindex, _spec, dst = struct.unpack("i4s4s", cdata[:12])
                    cmsgs = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, dst, b"\0" * 4))]
                elif self.family == socket.AF_INET6 and level == socket.IPPROTO_IPV6 and ctype == socket.IPV6_PKTINFO:
                    dst, _ifindex = struct.unpack("16si", cdata[:20])
                    cmsgs = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("16si", dst, 0))]
            try:
                self.sock.sendmsg([self.token.encode()], cmsgs, 0, peer)
            except OSError:
                pass  # our own output hook may drop it; the client sees a timeout


async def tcp_session(reader, writer, token):
    try:
        writer.write((token + "\n").encode())
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=600)
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def listen_main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    udp = []
    for port in parse_ports(args.tcp):
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(1024)
            s.setblocking(False)
            servers.append(await asyncio.start_server(
                lambda r, w: tcp_session(r, w, args.name), sock=s))
    for port in parse_ports(args.udp):
        for family in (socket.AF_INET, socket.AF_INET6):
            udp.append(UDPEcho(loop, family, port, args.name))

    # stdin EOF: the harness closed its end or died.
    def on_stdin():
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop.set()

    watch_stdin(loop, on_stdin)
    print("READY", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


# ---------------------------------------------------------------------------------------------------
# connect


def family_of(addr):
    return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET


def classify(exc):
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout", ""
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return "refused", ""
        if exc.errno == errno.EPERM:
            return "eperm", ""
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "timeout", os.strerror(exc.errno)  # no neighbour answer: as good as a drop
        return "error", "%s: %s" % (errno.errorcode.get(exc.errno, exc.errno), exc.strerror)
    return "error", repr(exc)


async def probe_tcp(p):
    loop = asyncio.get_running_loop()
    timeout = float(p.get("timeout", 1.0))
    deadline = loop.time() + timeout
    sock = socket.socket(family_of(p["dst"]), socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.bind((p["src"], 0))
        # No SYN retries beyond the timeout, and an RST on close (no TIME_WAIT pile-up).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (p["dst"], p["port"])), timeout)
        except Exception as e:  # noqa: BLE001 - classified below
            return classify(e)
        buf = b""
        try:
            while not buf.endswith(b"\n"):
                left = deadline - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError()
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 256), max(left, 0.5))
                if not chunk:
                    break
                buf += chunk
        except Exception as e:  # noqa: BLE001
            r, d = classify(e)
            return "connected", "handshake done, then %s %s" % (r, d)
        token = buf.decode(errors="replace").strip()
        if p.get("token") and token != p["token"]:
            return "wrong", token
        return "ok", token
    finally:
        sock.close()


async def probe_udp(p):
    loop = asyncio.get_running_loop()
    attempts = int(p.get("attempts", 3))
    per = float(p.get("timeout", 1.0)) / attempts
    sock = socket.socket(family_of(p["dst"]), socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.bind((p["src"], 0))
        sock.connect((p["dst"], p["port"]))
        last = ("timeout", "")
        for i in range(attempts):
            try:
                sock.send(("probe %s %d" % (p.get("id"), i)).encode())
                data = await asyncio.wait_for(loop.sock_recv(sock, 2048), per)
            except Exception as e:  # noqa: BLE001
                last = classify(e)
                if last[0] in ("refused", "error"):
                    return last
                continue
            token = data.decode(errors="replace").strip()
            if p.get("token") and token != p["token"]:
                return "wrong", token
            return "ok", token
        return last
    except OSError as e:
        return classify(e)
    finally:
        sock.close()


async def run_probe(p, sem):
    async with sem:
        t0 = time.monotonic()
        try:
            if p["proto"] == "tcp":
                result, detail = await probe_tcp(p)
            else:
                result, detail = await probe_udp(p)
        except Exception as e:  # noqa: BLE001 - a probe never takes the batch down
            result, detail = "error", repr(e)
        return {"id": p["id"], "result": result, "detail": detail,
                "ms": round((time.monotonic() - t0) * 1000)}


async def connect_main(args):
    probes = json.load(sys.stdin)
    sem = asyncio.Semaphore(args.concurrency)
    results = await asyncio.gather(*(run_probe(p, sem) for p in probes))
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


# ---------------------------------------------------------------------------------------------------
# hold


def emit(**kw):
    kw["t"] = time.time()
    print(json.dumps(kw), flush=True)


async def hold_main(args):
    loop = asyncio.get_running_loop()
    sock = socket.socket(family_of(args.dst), socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((args.src, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (args.dst, args.port)), 3)
    except Exception as e:  # noqa: BLE001
        emit(event="error", ok=False, detail="%s %s" % classify(e))
        return
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        token = await asyncio.wait_for(reader.readline(), 3)
    except Exception as e:  # noqa: BLE001
        emit(event="error", ok=False, detail="no token: %s %s" % classify(e))
        return
    emit(event="connected", ok=True, token=token.decode().strip())
    end = loop.time() + args.duration
    seq = 0
    pending = b""
    while loop.time() < end:
        seq += 1
        writer.write(b"%d\n" % seq)
        try:
            await asyncio.wait_for(writer.drain(), args.interval * 4)
        except Exception:  # noqa: BLE001 - a full send buffer is one more sign of a dead path
            pass
        got = None
        t_end = loop.time() + max(args.interval * 4, 0.8)
        while loop.time() < t_end:
            try:
                line = await asyncio.wait_for(reader.readline(), t_end - loop.time())
            except (asyncio.TimeoutError, TimeoutError):
                break
            except OSError as e:
                emit(event="closed", ok=False, seq=seq, detail="%s %s" % classify(e))
                return
            if not line:
                emit(event="closed", ok=False, seq=seq, detail="eof")
                return
            pending = line.strip()
            if pending == b"%d" % seq:
                got = seq
                break
            # An echo of an earlier line that was held up: data passed, but late.
            emit(event="echo", ok=True, seq=int(pending), late=True)
        if got is not None:
            emit(event="echo", ok=True, seq=seq)
            await asyncio.sleep(args.interval)
        else:
            emit(event="echo", ok=False, seq=seq)


# ---------------------------------------------------------------------------------------------------
# guard


async def guard_main(args):
    loop = asyncio.get_running_loop()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
    stopping = []

    def stop():
        if stopping or proc.returncode is not None:
            return
        stopping.append(True)
        proc.terminate()
        loop.call_later(1.0, lambda: proc.returncode is None and proc.kill())

    def on_stdin():
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop()

    watch_stdin(loop, on_stdin)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    rc = await proc.wait()
    sys.exit(rc if rc >= 0 else 128 - rc)


# ---------------------------------------------------------------------------------------------------


def main():
    # Many concurrent probes need many sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    lp = sub.add_parser("listen")
    lp.add_argument("--name", required=True)
    lp.add_argument("--tcp", default="")
    lp.add_argument("--udp", default="")
    cp = sub.add_parser("connect")
    cp.add_argument("--concurrency", type=int, default=min(hard // 2, 2000))
    hp = sub.add_parser("hold")
    hp.add_argument("--src", required=True)
    hp.add_argument("--dst", required=True)
    hp.add_argument("--port", type=int, required=True)
    hp.add_argument("--interval", type=float, default=0.2)
    hp.add_argument("--duration", type=float, default=120)
    gp = sub.add_parser("guard")
    gp.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    entry = {"listen": listen_main, "connect": connect_main, "hold": hold_main, "guard": guard_main}[args.mode]
    asyncio.run(entry(args))


if __name__ == "__main__":
    main()
