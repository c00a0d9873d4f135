"""Connection probes for the guest's checks (python3-minimal: socket, select, time only).

  echo.py serve PORT...              line echo on every PORT, IPv4 and IPv6, until killed
  echo.py probe HOST PORT TIMEOUT    exit 0 when a connection echoes one line within TIMEOUT s
  echo.py hold HOST PORT FILE        one connection, a ping every 0.1 s; writes "connected" to FILE,
                                     then "stopped UPTIME" once an echo is 0.5 s late, and exits
"""
import select
import socket
import sys
import time


def uptime():
    with open("/proc/uptime") as f:
        return f.read().split()[0]


def serve(ports):
    listeners = []
    for port in ports:
        for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((address, port))
            s.listen(16)
            listeners.append(s)
    clients = []
    while True:
        readable, _, _ = select.select(listeners + clients, [], [])
        for s in readable:
            if s in listeners:
                conn, _ = s.accept()
                clients.append(conn)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                s.sendall(data)
            else:
                clients.remove(s)
                s.close()


def probe(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"ping\n")
            return s.recv(16) == b"ping\n"
    except OSError:
        return False


def hold(host, port, path):
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(0.5)
    with open(path, "a") as out:
        out.write("connected %s\n" % uptime())
        out.flush()
        while True:
            try:
                s.sendall(b"ping\n")
                if s.recv(16) != b"ping\n":
                    raise OSError("short echo")
            except OSError:
                out.write("stopped %s\n" % uptime())
                return
            time.sleep(0.1)


def main(args):
    mode = args[0]
    if mode == "serve":
        serve([int(p) for p in args[1:]])
    elif mode == "probe":
        sys.exit(0 if probe(args[1], int(args[2]), float(args[3])) else 1)
    elif mode == "hold":
        hold(args[1], int(args[2]), args[3])
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main(sys.argv[1:])
