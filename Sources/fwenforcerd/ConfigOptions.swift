import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by commands that read a config file.
struct ConfigOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("Config file.", valueName: "file"))
    var config: String = defaultConfigPath

    @Option(name: .customLong("role"),
            help: ArgumentHelp("Plan as a host with this role (repeatable); overrides [host] roles.", valueName: "role"))
    var roles: [String] = []

    @Option(name: .customLong("host-address"),
            help: ArgumentHelp("With roles = \"auto\": plan as the host that owns this address (repeatable), instead of this machine.",
                               valueName: "address"))
    var hostAddresses: [String] = []

    /// Loads the config and resolves this host's roles; input errors are printed and exit 1.
    func load() throws -> (Config, [String]) {
        do {
            let cfg = try Config.load(path: config)
            for w in cfg.warnings { printError("warning: \(w)") }
            if !roles.isEmpty {
                for r in roles where !cfg.catalog.isRole(r) {
                    throw InputError(file: "--role", line: nil, key: nil, message: "unknown role \"\(r)\" in catalog \(cfg.catalog.name)")
                }
                return (cfg, roles)
            }
            var addrs = localInterfaceAddresses()
            if !hostAddresses.isEmpty {
                addrs = []
                for a in hostAddresses {
                    guard let ip = IPAddress(a) else {
                        throw InputError(file: "--host-address", line: nil, key: nil, message: "\"\(a)\" is not an IP address")
                    }
                    addrs.append(ip)
                }
            }
            return (cfg, try cfg.resolveRoles(hostAddresses: addrs))
        } catch let e as InputError {
            printError("error: \(e)")
            throw ExitCode(1)
        }
    }
}
