#if os(Linux)
import Glibc
import Testing
@testable import Enforcer

/// A fresh directory under /tmp, removed with everything in it by ``remove()``.
struct DaemonTemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/fwenforcer-daemon-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil, "mkdtemp: \(errno)")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func callAsFunction(_ name: String) -> String { path + "/" + name }

    func remove() {
        _ = try? run(["rm", "-rf", "--", path])
    }
}

/// Writes `text` to `path` the way `echo > path` does: truncate in place, write, close.
func daemonWriteInPlace(_ path: String, _ text: String, mode: mode_t = 0o600) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    try #require(fd >= 0, "open \(path): \(String(cString: strerror(errno)))")
    defer { close(fd) }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    try #require(written == bytes.count)
}

func daemonReadFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        result += chunk[0..<count]
    }
    return String(decoding: result, as: UTF8.self)
}

func daemonCheck(_ result: Int32, _ what: String) throws {
    try #require(result == 0, "\(what): \(String(cString: strerror(errno)))")
}

/// Waits up to `timeout` for `fd` to become readable; true if it did.
func daemonWaitReadable(_ fd: Int32, timeout: Duration) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, timeout.millisecondsRoundedUp) == 1
}
#endif
