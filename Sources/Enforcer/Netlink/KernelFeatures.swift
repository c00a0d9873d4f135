#if canImport(Glibc)
import Glibc
#endif

/// A Linux kernel release as `uname -r` gives it ("6.1.0-28-amd64", "5.10.0-30-cloud-amd64",
/// "6.18.44-fc-v1045"): only the numeric major.minor.patch prefix counts.
public struct KernelVersion: Comparable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        (self.major, self.minor, self.patch) = (major, minor, patch)
    }

    /// Nil when the release does not start with "MAJOR.MINOR".
    public init?(release: String) {
        // "6.1.0-28-amd64" -> ["6", "1", "0"]; the patch level may be missing ("6.1-rc3").
        let numeric = release.prefix { $0.isNumber || $0 == "." }
        let parts = numeric.split(separator: ".", omittingEmptySubsequences: false).prefix(3).map { Int($0) }
        guard parts.count >= 2, let major = parts[0], let minor = parts[1] else { return nil }
        let patch = parts.count == 3 ? parts[2] : 0
        guard let patch else { return nil }
        self.init(major, minor, patch)
    }

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }

    /// "5.13" for x.y.0, "4.19.1" otherwise.
    public var description: String { patch == 0 ? "\(major).\(minor)" : "\(major).\(minor).\(patch)" }

    /// The running kernel's release string (uname(2)'s `release`).
    public static func runningRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

/// One kernel facility fwenforcer cannot work without, and the first mainline release that has it.
/// docs/kernel.md lists the same table with what each one is used for.
public struct KernelFeature: Sendable, Equatable {
    public let name: String
    public let since: KernelVersion
    /// What breaks without it, for the refusal message.
    public let use: String
}

/// The start-time check of `fwenforcerd run` and `apply`: an older kernel would accept most of a
/// batch and silently drop the attributes it does not know (nfnetlink ignores unknown attributes),
/// so the daemon would run with, for example, an unmarked table it then refuses to own. Refusing
/// at start, naming what is missing, is the only honest answer.
public enum KernelRequirements {
    /// In order of introduction; the last one sets the minimum.
    public static let features: [KernelFeature] = [
        KernelFeature(name: "nf_tables with interval sets and ct state/direction", since: KernelVersion(3, 13),
                      use: "the ruleset itself"),
        KernelFeature(name: "the inet family (one table for IPv4 and IPv6; meta nfproto, l4proto)", since: KernelVersion(3, 14),
                      use: "table inet fwenforcer"),
        KernelFeature(name: "ruleset generation id (NFT_MSG_GETGEN, NEWGEN events)", since: KernelVersion(3, 15),
                      use: "drift detection and compare-and-swap"),
        KernelFeature(name: "rule userdata (NFTA_RULE_USERDATA)", since: KernelVersion(3, 15),
                      use: "rule comments naming the catalog row"),
        KernelFeature(name: "limit with burst and type (NFTA_LIMIT_BURST, NFTA_LIMIT_TYPE)", since: KernelVersion(4, 3),
                      use: "rate-limited drop logging"),
        KernelFeature(name: "set userdata (NFTA_SET_USERDATA)", since: KernelVersion(4, 7),
                      use: "set comments and key byte order, so nft lists the sets faithfully"),
        KernelFeature(name: "committer's pid and name in NEWGEN events (NFTA_GEN_PROC_PID)", since: KernelVersion(4, 17),
                      use: "naming who changed the table (drift log)"),
        KernelFeature(name: "batch generation check (NFNL_BATCH_GENID, ERESTART)", since: KernelVersion(4, 19),
                      use: "compare-and-swap against concurrent writers"),
        KernelFeature(name: "table userdata (NFTA_TABLE_USERDATA)", since: KernelVersion(5, 13),
                      use: "the ownership marker on fwenforcer's table: without it the kernel drops the marker "
                          + "and the table is never recognised as fwenforcer's"),
    ]

    /// The oldest kernel fwenforcer runs on.
    public static var minimum: KernelVersion { features.map(\.since).max()! }

    /// The features `version` lacks, oldest first.
    public static func missing(on version: KernelVersion) -> [KernelFeature] {
        features.filter { version < $0.since }
    }

    /// Throws when the running kernel (or `release`) is older than some feature. A release that does
    /// not parse is let through: custom builds name themselves freely, and the kernel's own errors
    /// still name any object it rejects.
    public static func check(release: String = KernelVersion.runningRelease()) throws {
        guard let version = KernelVersion(release: release) else { return }
        let missing = missing(on: version)
        guard !missing.isEmpty else { return }
        throw KernelTooOld(release: release, missing: missing)
    }
}

public struct KernelTooOld: Error, Equatable, CustomStringConvertible {
    public let release: String
    public let missing: [KernelFeature]

    public var description: String {
        let list = missing.map { "\($0.name), since \($0.since), for \($0.use)" }.joined(separator: "; ")
        return "kernel \(release) is too old for fwenforcer (needs \(KernelRequirements.minimum) or later); it lacks: \(list)"
    }
}
