import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The unit's ExecReload: SIGHUP to the daemon from fwenforcerd itself, since a minimal Debian has
/// no /bin/kill (procps is not essential) and the unit should need nothing the package does not ship.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Have the running daemon re-read its config and the kernel (SIGHUP); the unit's ExecReload.",
        discussion: """
        Signals the daemon (--pid, as systemd passes $MAINPID, or else the holder of the instance lock), \
        then checks the config: one with errors is reported with its file, line and key and exits 1, so \
        `systemctl reload` fails visibly. The daemon keeps enforcing its last good config either way.
        """)

    @Option(name: .shortAndLong, help: ArgumentHelp("Config file the daemon reads.", valueName: "file"))
    var config: String = defaultConfigPath

    @Option(help: ArgumentHelp("The daemon's pid (default: the holder of --lock-file).", valueName: "pid"))
    var pid: Int32?

    @Option(help: ArgumentHelp("Lock file of the daemon.", valueName: "path"))
    var lockFile: String = InstanceLock.defaultPath.string

    func run() throws {
        guard let target = pid ?? InstanceLock.holder(at: FilePath(lockFile)), target > 0 else {
            printError("error: no fwenforcerd run holds \(lockFile): nothing to reload")
            throw ExitCode(1)
        }
        guard kill(target, SIGHUP) == 0 else {
            printError("error: cannot signal pid \(target): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        do {
            _ = try Config.load(path: config)
        } catch {
            printError("error: \(error); pid \(target) keeps enforcing its last good config")
            throw ExitCode(1)
        }
        print("reload: signalled fwenforcerd (pid \(target)) to re-read \(config)")
    }
}
