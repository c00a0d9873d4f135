import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif


/// Settings of `fwenforcerd run`.
public struct DaemonOptions: Sendable {
    public var configPath: String
    /// Quiet time after the last config file event before it is read.
    public var debounce: Duration = .milliseconds(100)
    /// Period of the slow backstop: re-read the config and the kernel's table and repair.
    public var backstop: Duration = .seconds(600)
    /// Delete the table on SIGTERM/SIGINT instead of leaving the enforced ruleset in place.
    public var removeOnExit = false
    /// Refuse a config file not owned by root or writable by group/other (as sshd does).
    public var requireSecureConfig = true
    /// This host's addresses for `roles = "auto"`; nil reads the interfaces at every reload.
    public var hostAddresses: [IPAddress]?
    public var statePath: FilePath = StateFile.defaultPath
    /// Prometheus textfile (node_exporter's textfile collector); nil writes no metrics.
    public var metricsPath: FilePath?
    /// How often the metrics file is refreshed between events, to update the kernel's drop
    /// counters; zero refreshes it only after reconciles and config reads.
    public var metricsInterval: Duration = .seconds(60)
    /// The audit report; nil puts `audit.json` beside the state file.
    public var auditReportPath: FilePath?
    /// Cap on the distinct flows the audit report keeps (memory stays bounded under a flood).
    public var auditMaxFlows = 10_000

    /// Where the audit report goes.
    public var effectiveAuditReportPath: FilePath {
        auditReportPath ?? statePath.removingLastComponent().appending(Self.auditReportName)
    }

    public static let auditReportName = "audit.json"
    /// Makes every config change that changes the ruleset provisional: it is rolled back, and that
    /// config content refused, unless SIGUSR1 (`fwenforcerd confirm`) arrives within this time.
    public var confirmWithin: Duration?
    /// The pending-confirmation record `fwenforcerd confirm` reads.
    public var pendingPath: FilePath = PendingFile.defaultPath

    public init(configPath: String) { self.configPath = configPath }
}
