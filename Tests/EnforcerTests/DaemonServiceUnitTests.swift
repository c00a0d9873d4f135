#if os(Linux)
import Foundation
import Glibc
import Testing
@testable import Enforcer

/// deploy/fwenforcerd.service: accepted by systemd's own checker, and saying what the daemon relies on.
@Suite struct DaemonServiceUnitTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let unitPath = repository.appendingPathComponent("deploy/fwenforcerd.service").path
    static let systemdAnalyze: String? = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .first { (path: String) in access(path, X_OK) == 0 }

    /// The unit's settings, in order, with repeated keys kept.
    static func settings() throws -> [(key: String, value: String)] {
        try String(contentsOfFile: unitPath, encoding: .utf8).split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.hasPrefix("["), let equals = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<equals]), String(line[line.index(after: equals)...]))
        }
    }

    /// A copy of the unit whose ExecStart names an executable that exists, since verify checks it.
    func unitWithRealBinary(in dir: DaemonTemporaryDirectory) throws -> String {
        let binary = dir("fwenforcerd")
        try daemonWriteInPlace(binary, "#!/bin/sh\nexit 0\n", mode: 0o755)
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
            .replacingOccurrences(of: "=/usr/local/sbin/fwenforcerd ", with: "=\(binary) ")
        let copy = dir("fwenforcerd.service")
        try unit.write(toFile: copy, atomically: true, encoding: .utf8)
        return copy
    }

    @Test(.enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed (Debian package systemd): unit not verified"))
    func systemdAnalyzeVerifyPasses() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let result = try run([Self.systemdAnalyze!, "verify", try unitWithRealBinary(in: dir)])
        #expect(result.status == 0, "\(result.stderr)")
        // Unknown or misspelt settings are only warnings, with exit status 0: none are allowed.
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    /// `systemd-analyze security` scores the sandbox from 0 (locked down) to 10; keep it at "OK" or better.
    @Test(.enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed (Debian package systemd)"))
    func sandboxExposureStaysLow() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let result = try run([Self.systemdAnalyze!, "security", "--offline=true", try unitWithRealBinary(in: dir)])
        let summary = try #require(result.stdout.split(separator: "\n").last { $0.contains("Overall exposure level") })
        let score = try #require(summary.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) })
        #expect(score <= 2.0, "\(summary)")
    }

    @Test func unitStatesWhatTheDaemonReliesOn() throws {
        let settings = try Self.settings()
        func values(_ key: String) -> [String] { settings.filter { $0.key == key }.map(\.value) }
        #expect(values("Type") == ["notify"])
        #expect(values("ExecStart") == ["/usr/local/sbin/fwenforcerd run --config /etc/fwenforcer/fwenforcer.conf"])
        #expect(values("ExecReload") == ["/usr/local/sbin/fwenforcerd reload --config /etc/fwenforcer/fwenforcer.conf --pid $MAINPID"])
        // Every command the unit runs is the package's own binary: a minimal Debian has no /bin/kill.
        for key in ["ExecStart", "ExecReload", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecStopPost"] {
            for command in values(key) { #expect(command.hasPrefix("/usr/local/sbin/fwenforcerd "), "\(key)=\(command)") }
        }
        // Installing the package must not start enforcing before a config exists.
        #expect(values("ConditionPathExists") == ["/etc/fwenforcer/fwenforcer.conf"])
        #expect(values("WatchdogSec") == ["30"])
        #expect(values("Restart") == ["on-failure"])
        #expect(values("DefaultDependencies") == ["no"])
        #expect(values("Before").contains("network-pre.target"))
        #expect(values("Wants").contains("network-pre.target"))
        #expect(values("Conflicts") == ["shutdown.target"])
        #expect(values("Before").contains("shutdown.target"))
        #expect(values("CapabilityBoundingSet") == ["CAP_NET_ADMIN"])
        #expect(values("RestrictAddressFamilies") == ["AF_NETLINK AF_UNIX"])
        #expect(values("ProtectSystem") == ["strict"])
        #expect(values("NoNewPrivileges") == ["yes"])
        #expect(values("MemoryDenyWriteExecute") == ["yes"])
        #expect(values("SystemCallFilter").first == "@system-service")
        // Never a private network namespace: the firewall must be the host's.
        #expect(values("PrivateNetwork").isEmpty)
        #expect(values("PrivateUsers").isEmpty)
        // The lock and the state file live in the runtime directory systemd makes writable.
        let runtime = "/run/" + values("RuntimeDirectory").joined() + "/"
        #expect(InstanceLock.defaultPath.string.hasPrefix(runtime))
        #expect(StateFile.defaultPath.string.hasPrefix(runtime))
    }
}
#endif
