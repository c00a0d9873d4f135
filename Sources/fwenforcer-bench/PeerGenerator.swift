import Enforcer

/// Deterministic configs of N peers for one CloudCenter CCO host.
///
/// The peers are spread over the groups a CCO's rules reference. Host-only role groups become hash
/// sets; `admin_ssh` and `cloud_endpoints` hold CIDRs as well, so they become interval sets (the
/// set type follows from the config, docs/netlink.md). The mix, stated in the results:
/// - 70 % of the peers in 17 role groups (CCM, CCM_SA, AMQP, MON, their HA/LB variants, ...), hosts only;
///   a quarter of those are the next address after the group's previous host, as IPAM hands out
///   consecutive addresses (adjacent hosts stay separate elements of the hash set);
/// - 30 % in `admin_ssh` and `cloud_endpoints`, a quarter of those CIDRs (/30 for IPv4, /64 for IPv6);
/// - 40 % IPv4, 60 % IPv6, drawn per peer from a fixed-seed generator.
/// Other hosts take every other address, so an interval set keeps one range per host instead of
/// merging neighbours into one range. Every address is in 198.18.0.0/15 or fd00::/8.
struct PeerGenerator {
    static let hashGroups = ["CCM_SA", "CCM", "CCM_LB", "AMQP", "AMQP_PRIMARY", "AMQP_SECONDARY", "AMQP_LB", "MON",
                             "MON_PRIMARY", "MON_SECONDARY", "MON_LB", "EXT_SCRIPT_EXECUTOR", "GUAC", "PACKAGE_STORE",
                             "CCO_LB", "CCM_SA_PRIMARY", "CCM_SA_SECONDARY"]
    static let intervalGroups = ["admin_ssh", "cloud_endpoints"]
    static let mixDescription = "70 % of peers in 17 host-only role groups (hash sets; a quarter of them the address right after "
        + "their group's previous host, as IPAM hands out), 30 % in admin_ssh and cloud_endpoints "
        + "(interval sets, a quarter of them CIDRs: /30 IPv4, /64 IPv6); 40 % IPv4, 60 % IPv6; seed 2024"

    /// One peer replaced: which group, the address that leaves, the one that comes in.
    struct Replacement {
        var group: String
        var old: String
        var new: String
    }

    let peers: Int
    /// Group name -> addresses, in generation order.
    private(set) var groups: [String: [String]] = [:]
    private var rng: SplitMix64
    private var v4Hosts = 0, v6Hosts = 0, v4Nets = 0, v6Nets = 0
    /// Per family (true: IPv4), the last host given to a hash group, whose next address is free.
    private var lastHashHost: [Bool: (group: String, value: Int)] = [:]

    init(peers: Int, seed: UInt64 = 2024) {
        self.peers = peers
        rng = SplitMix64(seed: seed)
        for g in Self.hashGroups + Self.intervalGroups { groups[g] = [] }
        for i in 0..<peers {
            // The first peers make sure even N = 10 has hash sets of both families, one of them with
            // two hosts, and an interval set (admin_ssh_v4: a CIDR and a host, the host being the
            // one replaced).
            let interval = i < 4 ? i >= 2 : rng.next(below: 100) < 30
            let v4 = i < 4 ? i != 1 : rng.next(below: 100) < 40
            if i == 4, let first = lastHashHost[true] {
                // And a second IPv4 host in the first one's group, for the replacement next to a member.
                let host = nextHost(v4: true)
                groups[first.group]!.append(host.text)
                lastHashHost[true] = (first.group, host.value)
            } else if interval {
                let group = i < 4 ? Self.intervalGroups[0] : Self.intervalGroups[Int(rng.next(below: 2))]
                let cidr = i < 4 ? i == 2 : rng.next(below: 4) == 0
                groups[group]!.append(cidr ? nextNetwork(v4: v4) : nextHost(v4: v4).text)
            } else if i >= 4, rng.next(below: 4) == 0, let previous = lastHashHost[v4] {
                // IPAM's next address, in the same group: adjacent to a member of the hash set.
                groups[previous.group]!.append(Self.hostText(v4: v4, previous.value + 1))
                lastHashHost[v4] = nil
            } else {
                let group = Self.hashGroups[Int(rng.next(below: UInt64(Self.hashGroups.count)))]
                let host = nextHost(v4: v4)
                groups[group]!.append(host.text)
                lastHashHost[host.v4] = (group, host.value)
            }
        }
    }

    /// IPv4 hosts: odd addresses from 198.18.0.0 up to 198.19.127.255 (49,152 of them).
    /// IPv6 hosts: fd00:18::/64, every other address. The even addresses between are left for
    /// the adjacent hosts.
    private mutating func nextHost(v4: Bool) -> (text: String, v4: Bool, value: Int) {
        if v4 && v4Hosts < 49_152 {
            defer { v4Hosts += 1 }
            let a = 2 * v4Hosts + 1
            return (Self.hostText(v4: true, a), true, a)
        }
        defer { v6Hosts += 1 }
        let a = 2 * v6Hosts + 1
        return (Self.hostText(v4: false, a), false, a)
    }

    /// The host at offset `a` of the IPv4 or IPv6 host range.
    static func hostText(v4: Bool, _ a: Int) -> String {
        if v4 { return "198.\(18 + a >> 16).\((a >> 8) & 255).\(a & 255)" }
        return "fd00:18::\(String(a >> 16, radix: 16)):\(String(a & 0xffff, radix: 16))"
    }

    /// IPv4 networks: /30s every 8 addresses in 198.19.128.0/17 (4,096 of them). IPv6: fd00:19:<k>::/64.
    private mutating func nextNetwork(v4: Bool) -> String {
        if v4 && v4Nets < 4_096 {
            defer { v4Nets += 1 }
            let a = 8 * v4Nets
            return "198.19.\(128 + a >> 8).\(a & 255)/30"
        }
        defer { v6Nets += 1 }
        return "fd00:19:\(String(v6Nets >> 16, radix: 16)):\(String(v6Nets & 0xffff, radix: 16))::/64"
    }

    /// A replacement of the last host of `group` by a host address no group holds and that has no
    /// neighbour in any group. In a group with CIDRs, the host is taken from a family that has
    /// CIDRs, so its set is an interval set.
    mutating func replacement(in group: String) -> Replacement {
        let old = replaceableHost(in: group)
        // The next host's upper neighbour may yet be a pair's; the one after it has none.
        _ = nextHost(v4: !old.contains(":"))
        let new = nextHost(v4: !old.contains(":")).text
        return Replacement(group: group, old: old, new: new)
    }

    /// A replacement of the last host of a hash group by the free address right after another
    /// member of the group: in a hash set, an element change like any other. The group is the
    /// largest where that exists.
    func adjacentReplacement() -> Replacement {
        let byHeld = Dictionary(grouping: groups.values.joined().compactMap { IPAddress($0) }, by: \.family).mapValues { Set($0.map(\.value)) }
        for group in Self.hashGroups.sorted(by: { (groups[$0]!.count, $1) > (groups[$1]!.count, $0) }) where !groups[group]!.isEmpty {
            let old = replaceableHost(in: group)
            let oldAddress = IPAddress(old)!
            let held = byHeld[oldAddress.family] ?? []
            for member in groups[group]!.reversed() {
                guard let a = IPAddress(member), a.family == oldAddress.family, a != oldAddress,
                      a.value < IPAddress.maxValue(a.family), !held.contains(a.value + 1) else { continue }
                return Replacement(group: group, old: old, new: IPAddress(family: a.family, value: a.value + 1).description)
            }
        }
        preconditionFailure("no hash group has a free address next to a member")
    }

    private func replaceableHost(in group: String) -> String {
        let addresses = groups[group]!
        let cidrFamilies = Set(addresses.filter { $0.contains("/") }.map { $0.contains(":") })
        return addresses.last(where: { !$0.contains("/") && (cidrFamilies.isEmpty || cidrFamilies.contains($0.contains(":"))) })!
    }

    /// The group (of the given kind) holding the most addresses: where replacements are measured.
    func largestGroup(interval: Bool) -> String {
        (interval ? Self.intervalGroups : Self.hashGroups).max {
            (groups[$0]!.count, $1) < (groups[$1]!.count, $0)
        }!
    }

    /// The config text, optionally with one replacement applied. One address per line, as config
    /// management tools write long lists.
    func config(applying change: Replacement? = nil) -> String {
        var text = """
        # fwenforcer-bench: \(peers) peers for one CCO host (\(Self.mixDescription))
        [host]
        roles = ["CCO"]
        catalog = "cloudcenter"
        version = "4.10"

        [enforce]
        ingress = "enforce"
        egress = "enforce"

        [groups]

        """
        text.reserveCapacity(peers * 28 + 4096)
        for name in groups.keys.sorted() {
            var addresses = groups[name]!
            if let change, change.group == name, let i = addresses.firstIndex(of: change.old) { addresses[i] = change.new }
            guard !addresses.isEmpty else { continue }
            text += "\(name) = [\n"
            for a in addresses { text += "  \"\(a)\",\n" }
            text += "]\n"
        }
        return text
    }
}

/// A small fixed-seed generator (SplitMix64), so every run benchmarks the same addresses.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: UInt64) -> UInt64 { next() % bound }
}
