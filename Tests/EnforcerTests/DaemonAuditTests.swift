import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// Audit mode against the real kernel: the real `fwenforcerd run` in a namespace with
/// ingress = "audit", a peer namespace on a veth sending what the catalog allows and what it does
/// not, and the report read back through `fwenforcerd report --format json`.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"),
       .serialized)
struct DaemonAuditTests {
    typealias Namespace = DaemonRunTests.Namespace

    /// CCO at 198.18.0.20 auditing ingress; CCM_SA (198.18.0.10) may open 8443, nothing else.
    static let config = """
    [host]
    roles = ["CCO"]
    [enforce]
    ingress = "audit"
    [groups]
    CCM_SA = ["198.18.0.10"]
    AMQP = ["198.18.0.30"]
    admin_ssh = ["198.19.0.0/24"]
    """

    /// The server side (the daemon's namespace) and a peer holding 198.18.0.10 (CCM_SA) and
    /// 198.18.0.99 (in no group), joined by a veth.
    final class Pair {
        let setup: DaemonRunTests.Setup
        let peer: Namespace
        init(_ tag: String) throws {
            setup = try DaemonRunTests.Setup(tag, config: DaemonAuditTests.config)
            do {
                peer = try Namespace("\(tag)-peer")
            } catch {
                setup.close()
                throw error
            }
            do {
                let veth = "fwa\(UInt16.random(in: 0...UInt16.max))"
                let (s, p) = (setup.ns.name, peer.name)
                try run(["ip", "link", "add", "\(veth)a", "netns", s, "type", "veth", "peer", "name", "\(veth)b", "netns", p])
                try run(["ip", "-n", s, "addr", "add", "198.18.0.20/24", "dev", "\(veth)a"])
                try run(["ip", "-n", p, "addr", "add", "198.18.0.10/24", "dev", "\(veth)b"])
                try run(["ip", "-n", p, "addr", "add", "198.18.0.99/24", "dev", "\(veth)b"])
                try run(["ip", "-n", s, "link", "set", "\(veth)a", "up"])
                try run(["ip", "-n", p, "link", "set", "\(veth)b", "up"])
            } catch {
                close()
                throw error
            }
        }
        var reportPath: String { setup.dir.appendingPathComponent("audit.json").path }
        func close() {
            setup.close()
            peer.close()
        }
    }

    /// `fwenforcerd report --format json`, decoded; nil while there is no report yet.
    static func report(_ path: String, extra: [String] = []) throws -> AuditReport? {
        let r = try run([fwenforcerdPath, "report", "--format", "json", "--report-file", path] + extra)
        guard r.status == 0 else { return nil }
        return try AuditReport.decode(Data(r.stdout.utf8), path: path)
    }


    /// A background program in a namespace, killed (SIGKILL: children of the test runner inherit a
    /// signal mask that blocks SIGTERM) by `stop()`.
    static func background(_ ns: Namespace, _ script: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", ns.name, "python3", "-c", script]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    static func rssKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    }

    @Test func theReportListsExactlyWhatEnforceModeWouldDrop() throws {
        let pair = try Pair("audit")
        defer { pair.close() }
        let (server, peer) = (pair.setup.ns, pair.peer)
        let daemon = try pair.setup.start()
        #expect(try eventually(5) { try server.exec(["nft", "list", "chain", "inet", "fwenforcer", "input"]).stdout.contains("group 6600") },
                "\(daemon.logText)")
        // The kernel reads the audit rule back as planned (snaplen included): nothing to change.
        let diff = try server.exec([fwenforcerdPath, "plan", "--diff", "--config", pair.setup.path.path])
        #expect(diff.status == 0 && diff.stdout.contains("no changes"), "\(diff.stdout)\(diff.stderr)")
        // Where there is no report, report says why.
        let none = try run([fwenforcerdPath, "report", "--report-file", pair.reportPath + ".missing"])
        #expect(none.status == 1 && none.stderr.contains("no audit report at"), "\(none.stderr)")

        // TCP on 8443 (allowed from CCM_SA) and 9999 (not in the catalog), UDP on 9998 (not either): each answers.
        let servers = try Self.background(server, """
            import socket, threading
            def tcp(port):
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port)); s.listen(8)
                while True:
                    c, _ = s.accept(); c.sendall(c.recv(16).upper()); c.close()
            for port in (8443, 9999): threading.Thread(target=tcp, args=(port,), daemon=True).start()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 9998))
            while True:
                d, a = u.recvfrom(64); u.sendto(d.upper(), a)
            """)
        defer { kill(servers.processIdentifier, SIGKILL); servers.waitUntilExit() }
        let client = try peer.exec(["python3", "-c", """
            import socket, time
            def tcp(src, port):
                for _ in range(100):
                    try:
                        c = socket.create_connection(("198.18.0.20", port), timeout=2, source_address=(src, 0)); break
                    except ConnectionRefusedError: time.sleep(0.05)
                c.sendall(b"hi"); r = c.recv(16); c.close(); return r.decode()
            print("tcp8443", tcp("198.18.0.10", 8443))
            print("tcp9999", tcp("198.18.0.10", 9999))
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("198.18.0.99", 0)); u.settimeout(2)
            for i in range(3):
                u.sendto(b"u%d" % i, ("198.18.0.20", 9998)); print("udp9998", u.recvfrom(16)[0].decode())
            """])
        // Audit drops nothing: every exchange got its answer.
        #expect(client.stdout == "tcp8443 HI\ntcp9999 HI\nudp9998 U0\nudp9998 U1\nudp9998 U2\n", "\(client.stdout)\(client.stderr)")

        var report: AuditReport?
        #expect(try eventually(5) {
            report = try Self.report(pair.reportPath)
            return report?.flows.count == 2 && report?.flows.contains { $0.proto == "udp" && $0.packets == 3 } == true
        }, "\(String(describing: report)) \(daemon.logText)")
        let flows = try #require(report).flows
        let tcp = try #require(flows.first { $0.proto == "tcp" })
        let udp = try #require(flows.first { $0.proto == "udp" })
        // The TCP flow: every original-direction packet of the connection (SYN, ACK, data, FIN...).
        #expect(tcp.direction == .ingress && tcp.source == "198.18.0.10" && tcp.destination == "198.18.0.20" && tcp.port == 9999)
        #expect(tcp.packets >= 3 && tcp.remoteEnd == "source" && tcp.remoteGroups == ["CCM_SA"])
        #expect(udp.direction == .ingress && udp.source == "198.18.0.99" && udp.port == 9998 && udp.packets == 3 && udp.remoteGroups == [])
        #expect(udp.firstSeen <= udp.lastSeen && udp.interface?.hasPrefix("fwa") == true)
        // The allowed flow is not in it.
        #expect(!flows.contains { $0.port == 8443 })
        let r = try #require(report)
        #expect(r.auditing == [.ingress] && r.group == 6600 && r.leftOutPackets == 0 && r.lostPackets == 0)
        #expect(r.totals["ingress"]?.packets == tcp.packets + 3)

        // The table answers the operator's question; --direction out shows nothing here.
        let table = try run([fwenforcerdPath, "report", "--report-file", pair.reportPath])
        #expect(table.stdout.contains("If you switch to enforce, these flows break:"), "\(table.stdout)")
        #expect(table.stdout.contains("source CCM_SA"))
        #expect(try Self.report(pair.reportPath, extra: ["--direction", "out"])?.flows.isEmpty == true)

        // A reload keeps the counts; turning audit off keeps the report and says so.
        try DaemonRunTests.writeConfig(Self.config.replacingOccurrences(of: "ingress = \"audit\"", with: "ingress = \"enforce\""), to: pair.setup.path)
        #expect(try eventually(5) { try Self.report(pair.reportPath)?.auditing == [] }, "\(daemon.logText)")
        #expect(try Self.report(pair.reportPath)?.flows.count == 2)
        let off = try run([fwenforcerdPath, "report", "--report-file", pair.reportPath])
        #expect(off.stdout.contains("the daemon is not in audit mode now"), "\(off.stdout)")
    }

    /// A flood of distinct flows: the report keeps exactly the cap, counts what it left out, and the
    /// daemon's memory stays bounded.
    @Test func aFloodOfFlowsIsCappedInBoundedMemory() throws {
        let pair = try Pair("flood")
        defer { pair.close() }
        let (server, peer) = (pair.setup.ns, pair.peer)
        let cap = 500, sent = 20_000
        let metrics = pair.setup.dir.appendingPathComponent("fwenforcer.prom").path
        let daemon = try pair.setup.start(extra: ["--audit-max-flows", String(cap), "--metrics-file", metrics, "--metrics-interval", "1"])
        #expect(try eventually(5) { try server.exec(["nft", "list", "chain", "inet", "fwenforcer", "input"]).stdout.contains("group 6600") })
        let pid = daemon.process.processIdentifier
        let before = try #require(Self.rssKiB(pid))

        // 20,000 UDP packets to distinct ports, paced so the veth's backlog does not drop them.
        let flood = try peer.exec(["python3", "-c", """
            import socket, time
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(\(sent)):
                u.sendto(b"f", ("198.18.0.20", 20000 + i))
                if i % 200 == 199: time.sleep(0.002)
            """])
        #expect(flood.status == 0, "\(flood.stderr)")
        var report: AuditReport?
        // Settled: every packet seen, or the counts unchanged for 2 s (the report is rewritten at
        // most once a second, and only when something new arrived).
        var last: (seen: UInt64, since: Date) = (0, Date())
        #expect(try eventually(20) {
            report = try Self.report(pair.reportPath)
            let seen = (report?.totals["ingress"]?.packets ?? 0) + (report?.lostPackets ?? 0)
            if seen != last.seen { last = (seen, Date()) }
            return seen >= UInt64(sent) || (seen > UInt64(cap) && Date().timeIntervalSince(last.since) > 2)
        }, "\(String(describing: report?.totals)) \(daemon.logText)")
        let r = try #require(report)
        let after = try #require(Self.rssKiB(pid))
        let seen = (r.totals["ingress"]?.packets ?? 0) + r.lostPackets
        print("audit flood: \(sent) sent, \(r.totals["ingress"]?.packets ?? 0) counted, \(r.lostPackets) lost in the kernel, \(r.flows.count) flows kept, \(r.leftOutPackets) packets / about \(r.leftOutFlowsEstimate) flows left out; RSS \(before) KiB before, \(after) KiB after")
        #expect(r.flows.count == cap)
        #expect(r.maxFlows == cap)
        #expect(r.leftOutPackets > 0 && r.leftOutFlowsEstimate > 0)
        // Every flow is distinct, so what is kept plus what is left out is what was counted.
        #expect(UInt64(r.flows.count) + r.leftOutPackets == r.totals["ingress"]?.packets)
        #expect(seen > UInt64(sent) * 9 / 10, "most of the flood reached the daemon")
        // Kept flows are the first ones (ports 20000...), not an arbitrary sample.
        #expect(r.flows.allSatisfy { ($0.port ?? 0) < 20_000 + UInt16(cap) + UInt16(r.lostPackets) })
        // The metrics file carries the same totals.
        let counted = r.totals["ingress"]?.packets ?? 0
        #expect(eventually(5) {
            let text = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
            return text.contains("fwenforcer_audit_would_drop_packets_total{direction=\"ingress\"} \(counted)\n")
                && text.contains("fwenforcer_audit_flows_left_out_total \(r.leftOutFlowsEstimate)\n")
        }, "\((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "no metrics file")")
        // Bounded: 500 flows and the 128 KiB left-out bitmap, not 20,000 flows.
        #expect(after - before < 8 * 1024, "RSS grew from \(before) to \(after) KiB")
    }
}
