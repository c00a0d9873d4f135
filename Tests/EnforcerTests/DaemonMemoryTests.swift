import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's memory does not grow with reloads. TOMLKit 0.6 leaked every parsed document and
/// every string read from it (14 MiB per reload of a 100,000-peer config); `TOMLDocument.release`
/// and `TOMLDocument.string` free them. Measured on the real binary, in its own process.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonMemoryTests {
    /// A CCO config with `count` AMQP hosts (IPv6, so none are adjacent), one of them replaced by `variant`.
    static func config(count: Int, variant: Int) -> String {
        var lines = ["[host]", "roles = [\"CCO\"]", "[groups]", "CCM_SA = [\"198.18.0.10\"]", "AMQP = ["]
        lines.append("  \"\(variantAddress(variant))\",")
        for i in 1..<count { lines.append("  \"fd00:18::\(String(i >> 15, radix: 16)):\(String(2 * (i & 0x7fff) + 1, radix: 16))\",") }
        lines.append("]")
        return lines.joined(separator: "\n") + "\n"
    }

    static func variantAddress(_ variant: Int) -> String { "fd00:19::\(String(variant, radix: 16))" }

    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    }

    @Test func reloadsDoNotGrowTheDaemon() throws {
        let count = 40_000
        let setup = try DaemonRunTests.Setup("memory", config: Self.config(count: count, variant: 0))
        defer { setup.close() }
        let daemon = try setup.start(extra: ["--allow-insecure-config"])
        let waiter = DaemonRunTests()
        #expect(eventually(30) { daemon.logText.contains("reconcile (start)") }, "\(daemon.logText)")
        // `ip netns exec` execs the daemon: the Process is the daemon.
        let pid = daemon.process.processIdentifier
        var samples: [Int] = []
        for variant in 1...6 {
            try DaemonRunTests.writeConfig(Self.config(count: count, variant: variant), to: setup.path)
            let needle = Self.variantAddress(variant)
            #expect(eventually(30) { (try? waiter.setHas(setup.ns, "AMQP_v6", needle)) ?? false }, "\(daemon.logText.suffix(2000))")
            usleep(200_000)
            samples.append(try #require(Self.residentKiB(pid)))
        }
        // The leak added about 5.5 MiB per reload at 40,000 peers; allow 4 MiB over five reloads.
        print("daemon RSS after reloads 1-6 of a \(count)-peer config: \(samples.map { "\($0 / 1024) MiB" }.joined(separator: ", "))")
        #expect(samples.last! - samples[0] < 4 * 1024, "RSS grew from \(samples[0]) KiB to \(samples.last!) KiB over five reloads")
    }
}

/// The pieces behind the fix, without a daemon.
struct TOMLDocumentMemoryTests {
    @Test func valuesAreReadThroughTheFastPathAndDocumentsFreed() throws {
        // TOMLKit's value layout is as `TOMLDocument` expects: strings are read at the speed a
        // 100,000-address config needs, not through reflection.
        #expect(TOMLDocument.pointerIsFirstWord)
        let doc = try TOMLDocument(text: "a = \"x\"\nb = [\"198.18.0.1\", \"fd00::1\"]\nc = 3\n", file: "t.toml")
        defer { doc.release() }
        #expect(TOMLDocument.nodePointer(of: doc.root) != nil)
        #expect(try doc.string(doc.root, "a", path: "a") == "x")
        #expect(try doc.stringArray(doc.root, "b", path: "b") == ["198.18.0.1", "fd00::1"])
        #expect(throws: InputError.self) { try doc.string(doc.root, "c", path: "c") }
    }
}
