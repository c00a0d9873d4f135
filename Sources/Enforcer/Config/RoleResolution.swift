#if canImport(Glibc)
import Glibc
#endif

/// This host's own interface addresses. The corresponding C function is `getifaddrs`.
public func localInterfaceAddresses() -> [IPAddress] {
    var head: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&head) == 0, let first = head else { return [] }
    defer { freeifaddrs(head) }
    var out: [IPAddress] = []
    var cur: UnsafeMutablePointer<ifaddrs>? = first
    while let ifa = cur {
        defer { cur = ifa.pointee.ifa_next }
        guard let sa = ifa.pointee.ifa_addr else { continue }
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let bytes = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) }
            }
            out.append(IPAddress(family: .ipv4, bytes: bytes))
        case AF_INET6:
            let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
            }
            out.append(IPAddress(family: .ipv6, bytes: bytes))
        default:
            continue
        }
    }
    return Array(Set(out)).sorted()
}

extension Config {
    /// The roles of this host: the configured list, or for `roles = "auto"` every role whose group
    /// holds one of `hostAddresses` (in catalog order). An empty result is an error.
    public func resolveRoles(hostAddresses: [IPAddress]) throws(InputError) -> [String] {
        switch host.roles {
        case .list(let roles):
            return roles
        case .auto:
            let found = catalog.roles.map(\.name).filter { role in
                let set4 = AddressSet(family: .ipv4, prefixes: addresses(of: role))
                let set6 = AddressSet(family: .ipv6, prefixes: addresses(of: role))
                return hostAddresses.contains { $0.family == .ipv4 ? set4.contains($0) : set6.contains($0) }
            }
            guard !found.isEmpty else {
                let shown = hostAddresses.filter { !$0.description.hasPrefix("127.") && $0.description != "::1" }
                throw InputError(file: path, line: host.rolesLine, key: "host.roles",
                                 message: "roles = \"auto\", but no role group holds one of this host's addresses ("
                                    + (shown.isEmpty ? "none besides loopback" : shown.map(\.description).joined(separator: ", "))
                                    + "); add this host to its role's group, or list its roles")
            }
            return found
        }
    }
}
