#if os(Linux)
import FoundationEssentials
import Glibc
import SystemPackage

/// What the daemon last enforced, for `fwenforcerd status` (which adds what it reads from the kernel).
public struct EnforcedState: Codable, Sendable, Equatable {
    /// The most recent failure, kept until a later apply succeeds.
    public struct Failure: Codable, Sendable, Equatable {
        public var message: String
        public var at: Date

        public init(message: String, at: Date) {
            self.message = message
            self.at = at
        }
    }

    /// Bumped when a field changes meaning; readers refuse versions they do not know.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The config file as given on the command line.
    public var configPath: String
    /// ``SHA256`` of the config bytes that produced the enforced ruleset, as hex.
    public var configSHA256: String
    /// When that ruleset was applied; nil before the first successful apply.
    public var appliedAt: Date?
    /// The kernel's nftables ruleset generation id right after that apply. A different current
    /// generation means the ruleset changed since (not necessarily our table).
    public var generation: UInt32
    public var lastError: Failure?
    /// Elements per named set, e.g. `["CCM_v4": 1, "AMQP_v6": 1]`.
    public var setElementCounts: [String: Int]
    /// The daemon that wrote the file.
    public var daemonPID: Int32
    /// While the enforced ruleset is provisional (`run --confirm-within`): when it is rolled back
    /// unless `fwenforcerd confirm` arrives. Absent in files written before provisional apply existed.
    public var confirmBy: Date?
    /// A config whose provisional ruleset was rolled back: refused until the file's content changes.
    public var refusedConfigSHA256: String?
    /// The table the daemon manages (`[enforce] table`): remembered so that a daemon restarted
    /// with a renamed table deletes the old one. Absent in files of earlier versions.
    public var table: String?
    /// Why the fail-closed baseline is enforced instead of a plan; nil while a plan is.
    public var baseline: String?

    public init(
        configPath: String, configSHA256: String, appliedAt: Date?, generation: UInt32,
        lastError: Failure? = nil, setElementCounts: [String: Int], daemonPID: Int32 = getpid(),
        confirmBy: Date? = nil, refusedConfigSHA256: String? = nil, table: String? = nil, baseline: String? = nil
    ) {
        self.formatVersion = Self.currentFormatVersion
        self.configPath = configPath
        self.configSHA256 = configSHA256
        self.appliedAt = appliedAt
        self.generation = generation
        self.lastError = lastError
        self.setElementCounts = setElementCounts
        self.daemonPID = daemonPID
        self.confirmBy = confirmBy
        self.refusedConfigSHA256 = refusedConfigSHA256
        self.table = table
        self.baseline = baseline
    }
}

/// The state file could not be used.
public struct StateFileError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "state file \(path): \(reason)" }
}

/// A small JSON file holding ``EnforcedState``, replaced atomically: readers see the old or the new
/// content, never a mix, and a crash mid-write leaves the old file.
public struct StateFile: Sendable {
    /// In the daemon's `RuntimeDirectory=`: /run is emptied at boot, as the kernel's ruleset is.
    public static let defaultPath: FilePath = "/run/fwenforcer/state.json"

    public let path: FilePath

    public init(path: FilePath = defaultPath) {
        self.path = path
    }

    /// Replaces the file atomically (``AtomicFile``). Mode 0644: status is not a secret.
    public func write(_ state: EnforcedState) throws {
        try AtomicFile.write(try AtomicFile.json(state), to: path)
    }

    /// The state last written, or nil when there is no state file (the daemon never applied on this boot).
    public func read() throws -> EnforcedState? {
        let target = path.string
        guard let bytes = try AtomicFile.read(path) else { return nil }
        struct Version: Decodable { var formatVersion: Int }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let data = Data(bytes)
        let version: Int
        do {
            version = try decoder.decode(Version.self, from: data).formatVersion
        } catch {
            throw StateFileError(path: target, reason: "not a fwenforcer state file (\(error))")
        }
        guard version == EnforcedState.currentFormatVersion else {
            throw StateFileError(
                path: target,
                reason: "format version \(version), this fwenforcerd reads \(EnforcedState.currentFormatVersion)")
        }
        do {
            return try decoder.decode(EnforcedState.self, from: data)
        } catch {
            throw StateFileError(path: target, reason: "unreadable (\(error))")
        }
    }
}
#endif
