/// Python (stdlib) programs for tests that hold a TCP connection across a firewall change and
/// watch it be cut or come back.
enum HeldConnection {
    /// An echo server on `port` (all addresses), one thread per connection.
    static func echoServer(port: Int) -> String {
        """
        import socket, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", \(port))); s.listen(8)
        def echo(c):
            try:
                while True:
                    d = c.recv(1)
                    if not d: break
                    c.sendall(d)
            except OSError: pass
        while True:
            c, _ = s.accept()
            threading.Thread(target=echo, args=(c,), daemon=True).start()
        """
    }

    /// A client that connects to `host`:`port` (retrying for 5 s), prints `connected`, then sends
    /// a byte every 50 ms and prints `ok`, `timeout` (no echo within 0.2 s) or `closed` for each.
    /// Run it with `python3 -u`.
    static func client(host: String, port: Int) -> String {
        """
        import socket, time
        for _ in range(100):
            try:
                c = socket.create_connection(("\(host)", \(port)), timeout=1); break
            except OSError: time.sleep(0.05)
        print("connected", flush=True)
        c.settimeout(0.2)
        while True:
            c.sendall(b"x")
            try: print("ok" if c.recv(1) else "closed", flush=True)
            except socket.timeout: print("timeout", flush=True)
            time.sleep(0.05)
        """
    }
}
