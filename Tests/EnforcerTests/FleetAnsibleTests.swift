import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// deploy/ansible: the real ansible-playbook runs the fwenforcer role against localhost
/// (`-c local`, limited to the CCO VM of the example inventory), rendering into a temporary
/// directory with the service tasks off; the result is checked with the real fwenforcerd.
@Suite(.serialized, .enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: fwenforcerdPath),
                             "needs root (the config is chowned to root) and the built fwenforcerd"),
       .enabled(if: Fleet.ansiblePlaybook != nil,
                "ansible-playbook is not installed (Debian package ansible-core): the Ansible role is not tested"))
struct FleetAnsibleTests {
    /// A scratch directory with a copy of the example inventory (so a test can edit it).
    final class Scratch {
        let dir: URL
        var inventory: URL { dir.appendingPathComponent("inventory") }
        var config: URL { dir.appendingPathComponent("etc/fwenforcer/fwenforcer.conf") }
        init() throws {
            dir = URL(fileURLWithPath: try DaemonTemporaryDirectory().path)
            try FileManager.default.copyItem(at: Fleet.ansible.appendingPathComponent("inventory"), to: inventory)
        }
        func close() { try? FileManager.default.removeItem(at: dir) }

        /// ansible-playbook site.yml as the CCO VM on this machine; returns the status, the output
        /// and the recap's changed count.
        func play(_ extra: [String] = []) throws -> (status: Int32, output: String, changed: Int?) {
            let r = try run(["env", "ANSIBLE_LOCAL_TEMP=\(dir.path)/ansible-tmp", "ANSIBLE_REMOTE_TEMP=\(dir.path)/ansible-tmp",
                             "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0",
                             Fleet.ansiblePlaybook!, "-i", inventory.path, Fleet.ansible.appendingPathComponent("site.yml").path,
                             "-c", "local", "--limit", "cco-1",
                             "-e", "fwenforcer_config_path=\(config.path)", "-e", "fwenforcer_binary=\(fwenforcerdPath)",
                             "-e", "fwenforcer_manage_service=false"] + extra)
            let output = r.stdout + r.stderr
            let recap = output.split(separator: "\n").last { $0.hasPrefix("cco-1") && $0.contains("changed=") }
            let changed = recap?.split(separator: " ").first { $0.hasPrefix("changed=") }.flatMap { Int($0.dropFirst(8)) }
            return (r.status, output, changed)
        }
    }

    @Test func theRoleRendersAValidSharedConfigIdempotently() throws {
        let scratch = try Scratch()
        defer { scratch.close() }
        let first = try scratch.play()
        #expect(first.status == 0, "\(first.output)")
        #expect(first.changed == 2, "directory and config: \(first.output)")
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch.config.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.ownerAccountID] as? Int) == 0)

        // The whole inventory's membership, although the play ran for one VM.
        let text = try String(contentsOf: scratch.config, encoding: .utf8)
        #expect(text.contains("roles = \"auto\""))
        #expect(text.contains("\"AMQP\" = [\"198.18.0.30\", \"fd00:18::30\"]"), "\(text)")
        #expect(text.contains("\"MON\" = [\"198.18.0.40\"]"), "\(text)")
        #expect(text.contains("\"admin_ssh\" = [\"198.19.0.0/24\", \"fd00:19::/64\"]"), "\(text)")

        let check = try run([fwenforcerdPath, "check", "--config", scratch.config.path, "--host-address", "198.18.0.20"])
        #expect(check.status == 0 && check.stdout.contains("ok: roles CCO"), "\(check.stdout)\(check.stderr)")
        let topology = try run([fwenforcerdPath, "check", "--topology", scratch.config.path])
        #expect(topology.status == 0 && topology.stdout.contains("\n0 errors"),
                "\(topology.stdout)\(topology.stderr)")
        #expect(topology.stdout.contains("198.18.0.30: AMQP") && topology.stdout.contains("198.18.0.10: CCM_SA"), "\(topology.stdout)")

        let second = try scratch.play()
        #expect(second.status == 0 && second.changed == 0, "not idempotent: \(second.output)")
    }

    @Test func anInventoryChangeIsRenderedAndAnInvalidOneIsNotInstalled() throws {
        let scratch = try Scratch()
        defer { scratch.close() }
        #expect(try scratch.play().status == 0)

        // The AMQP VM is replaced: the next run changes the file, and only that address.
        let hosts = scratch.inventory.appendingPathComponent("hosts")
        let inventory = try String(contentsOf: hosts, encoding: .utf8)
        try inventory.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31").write(to: hosts, atomically: true, encoding: .utf8)
        let before = try String(contentsOf: scratch.config, encoding: .utf8)
        let replaced = try scratch.play()
        #expect(replaced.status == 0 && replaced.changed == 1, "\(replaced.output)")
        let after = try String(contentsOf: scratch.config, encoding: .utf8)
        #expect(after == before.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31"))

        // A typo in an address fails the template's validation; the installed file stays.
        let invalid = try scratch.play(["-e", #"{"fwenforcer_special_groups": {"admin_ssh": ["198.19.0.300/24"]}}"#])
        #expect(invalid.status != 0)
        #expect(invalid.output.contains("failed to validate"), "\(invalid.output)")
        #expect(invalid.output.contains("groups.admin_ssh"), "\(invalid.output)")
        #expect(try String(contentsOf: scratch.config, encoding: .utf8) == after)
    }

    /// Group names are the config's keys: one that is not a catalog name fails the play before
    /// anything is written, whether it comes from the variables (a special group whose name closes
    /// the previous line and opens admin_ssh to the world, which `fwenforcerd check` would accept)
    /// or from the inventory (a dynamic inventory's group named by anyone who can tag a VM).
    @Test func aGroupNameThatIsNotACatalogNameChangesNoGroup() throws {
        let scratch = try Scratch()
        defer { scratch.close() }
        #expect(try scratch.play().status == 0)
        let installed = try String(contentsOf: scratch.config, encoding: .utf8)

        let injected = #"{"fwenforcer_special_groups": {"browsers = [\"198.19.1.0/24\"]\nadmin_ssh": ["0.0.0.0/0"]}}"#
        let special = try scratch.play(["-e", injected])
        #expect(special.status != 0, "\(special.output)")
        #expect(special.output.contains(#"group \"browsers = [\\\"198.19.1.0/24\\\"]\\nadmin_ssh\" is not a catalog role or group name"#),
                "\(special.output)")
        #expect(try String(contentsOf: scratch.config, encoding: .utf8) == installed)

        // A YAML inventory beside the example's: one more VM, in a group whose name is TOML.
        try """
        fwenforcer:
          children:
            "GUAC = [\\"198.18.0.50\\"]\\nany":
              hosts:
                guac-1:
                  ansible_host: 198.18.0.50
                  fwenforcer_addresses: ["0.0.0.0/0"]
        """.write(to: scratch.inventory.appendingPathComponent("hostile.yml"), atomically: true, encoding: .utf8)
        let inventory = try scratch.play()
        #expect(inventory.status != 0, "\(inventory.output)")
        #expect(inventory.output.contains("is not a catalog role or group name"), "\(inventory.output)")
        #expect(try String(contentsOf: scratch.config, encoding: .utf8) == installed)
    }
}
