import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The installed config path; the systemd unit and `make install` use the same.
let defaultConfigPath = "/etc/fwenforcer/fwenforcer.conf"

@main
struct Fwenforcerd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fwenforcerd",
        abstract: "Compile a host's minimal firewall from a role catalog and enforce it with nftables.",
        discussion: """
        fwenforcerd reads fwenforcer.conf (this VM's roles and its peers' addresses, grouped by role), \
        compiles the ingress and egress allow-list the role catalog asks for, and programs it into one \
        nftables table (inet fwenforcer) over netlink.

        Start with a dry run:  fwenforcerd plan --config etc/fwenforcer.conf
        """,
        subcommands: [Plan.self, Check.self, Apply.self, Confirm.self, Run.self, Reload.self, Status.self, Report.self, CatalogCommand.self, ConfirmWait.self],
        defaultSubcommand: nil
    )
}
