import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child that exits before reading its input, or a pipe a tool closes early, must fail that one
/// test with EPIPE, not kill the whole test process with SIGPIPE (it did, driving chromium).
/// Children start with default signal dispositions again (Foundation's Process resets them).
let pipeSignalIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// Runs a program and collects its exit status and output (tests only; the product never runs nft).
@discardableResult
func run(_ argv: [String], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    _ = pipeSignalIgnored
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inPipe = Pipe()
    p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    try p.run()
    if let input {
        // A child that does not read its input gets EPIPE here; its exit status tells the test.
        try? inPipe.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        try? inPipe.fileHandleForWriting.close()
    }
    // Read both pipes before waiting, so a chatty child cannot block on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// True when the tests can make network namespaces and program netfilter in them.
let canUseNetns: Bool = geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft")

/// Checks nft text with `nft -c -f` in a network namespace of its own that disappears with the
/// process (`unshare --net`), so the machine's own firewall is never involved.
func nftCheck(_ text: String) throws -> (ok: Bool, message: String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-check-\(UUID().uuidString).nft")
    try text.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let r = try run(["unshare", "--net", "nft", "-c", "-f", file.path])
    return (r.status == 0, r.stderr)
}

/// `setns(fd, CLONE_NEWNET)` for this thread. Glibc's Swift module hides `setns` (it needs
/// _GNU_SOURCE), so it is looked up at run time.
func enterNetworkNamespace(_ fd: Int32) -> Bool {
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return false }
    let cloneNewNet: Int32 = 0x4000_0000
    return unsafeBitCast(sym, to: SetNS.self)(fd, cloneNewNet) == 0
}

/// The `fwenforcerd` binary built beside this test bundle (`swift build --build-tests` builds both),
/// or `FWENFORCERD_UNDER_TEST`: another build, to show a test fails on an earlier version.
let fwenforcerdPath: String = ProcessInfo.processInfo.environment["FWENFORCERD_UNDER_TEST"] ?? builtExecutablePath("fwenforcerd")

/// An executable of this package built beside the test bundle.
func builtExecutablePath(_ name: String) -> String {
    let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [bundleDir, bundleDir.deletingLastPathComponent()] {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return bundleDir.appendingPathComponent(name).path
}
