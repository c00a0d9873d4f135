#if os(Linux)
import FoundationEssentials
import Glibc
import SystemPackage

/// A ruleset change that is rolled back unless `fwenforcerd confirm` arrives in time: the one record
/// the CLI (`apply --confirm-within`) and the daemon (`run --confirm-within`) share with `confirm`.
///
/// The process named by `pid` owns the window: it takes SIGUSR1 as the confirmation, and at the
/// deadline restores `previous` itself. The record is removed when the change is confirmed (that
/// removal is the acknowledgement `confirm` waits for), and kept with state `rolled-back` after a
/// rollback, so that a late `confirm` can say what happened instead of "nothing pending".
public struct PendingConfirmation: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Waiting for `fwenforcerd confirm`.
        case pending
        /// The deadline passed; the previous ruleset is being restored. A confirmation is too late.
        case rollingBack = "rolling-back"
        /// The previous ruleset was restored (see `outcome`).
        case rolledBack = "rolled-back"
        /// The restore failed (see `outcome`): the provisional ruleset may still be enforced.
        case rollbackFailed = "rollback-failed"
    }

    /// Who owns the window.
    public enum Owner: String, Codable, Sendable {
        /// The detached waiter of `fwenforcerd apply --confirm-within`.
        case apply
        /// `fwenforcerd run --confirm-within`.
        case daemon
    }

    /// Bumped when a field changes meaning; readers refuse versions they do not know.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var state: State
    /// The process that takes SIGUSR1 and rolls back.
    public var pid: Int32
    /// When that process started (``ProcessIdentity``): with `pid`, what tells it from a process
    /// that got the same pid later. Nil in records written before it existed, whose owner is then
    /// never signalled (its window ends by itself).
    public var ownerStartTime: UInt64?
    public var owner: Owner
    public var table: String
    public var appliedAt: Date
    /// The end of the window.
    public var deadline: Date
    public var configPath: String
    /// ``SHA256`` of the config bytes whose ruleset is provisional, as hex.
    public var configSHA256: String
    /// What the provisional change did, in the words of a reconcile line (`CCM_SA_v4 +1 -1, rules unchanged`).
    public var applied: String
    /// The config the previous ruleset came from, when known (the daemon knows it, `apply` does not).
    public var previousConfigSHA256: String?
    /// What a rollback restores: the table as the kernel held it before the change; nil when there
    /// was no table (a rollback deletes it).
    public var previous: Ruleset?
    /// What the rollback did, or why it failed.
    public var outcome: String?
    /// Names this change: `fwenforcerd confirm` sends it with its SIGUSR1 (the signal's value), and
    /// the owner keeps the change only when it names the change pending now. A confirmation meant
    /// for a change that a newer one replaced is refused. Nil in records of earlier versions.
    public var token: Int32?

    /// A fresh token: positive (it travels as `sival_int`) and never 0 (a plain `kill`).
    public static func newToken() -> Int32 { Int32.random(in: 1...Int32.max) }

    /// `ownerStartTime` nil reads the start time of `pid` now (it must be running).
    public init(state: State = .pending, pid: Int32 = getpid(), ownerStartTime: UInt64? = nil, owner: Owner, table: String,
                appliedAt: Date = Date(), deadline: Date, configPath: String, configSHA256: String, applied: String,
                previousConfigSHA256: String? = nil, previous: Ruleset?) {
        self.formatVersion = Self.currentFormatVersion
        self.state = state
        self.pid = pid
        self.ownerStartTime = ownerStartTime ?? ProcessIdentity.of(pid)?.startTime
        self.owner = owner
        self.table = table
        self.appliedAt = appliedAt
        self.deadline = deadline
        self.configPath = configPath
        self.configSHA256 = configSHA256
        self.applied = applied
        self.previousConfigSHA256 = previousConfigSHA256
        self.previous = previous
        self.token = Self.newToken()
    }

    /// The end of a window of `window` from now, rounded up to a whole second: the record stores
    /// whole seconds, and the window must not end before the time the operator was shown.
    public static func deadline(after window: Duration) -> Date {
        let seconds = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        return Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + seconds).rounded(.up))
    }

    /// "table fwenforcer as it was (2 chains, 31 rules, 12 sets)" or "no table".
    public var previousDescription: String {
        guard let previous else { return "no table inet \(table) (it is deleted)" }
        let rules = previous.chains.reduce(0) { $0 + $1.rules.count }
        return "table inet \(table) as it was (\(previous.chains.count) chains, \(rules) rules, \(previous.sets.count) sets)"
    }

    /// The process that owns the window, as recorded; nil for a record without a start time.
    public var ownerIdentity: ProcessIdentity? {
        ownerStartTime.map { ProcessIdentity(pid: pid, startTime: $0) }
    }

    /// Whether the owner of the window is still there: the process with that pid *and* start time
    /// (a pid reused by another program must never get a SIGUSR1, whose default action kills it).
    public var ownerIsAlive: Bool { ownerIdentity?.isAlive ?? false }
}

/// The pending-confirmation record could not be used.
public struct PendingFileError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "pending-confirmation record \(path): \(reason)" }
}

/// The file holding a ``PendingConfirmation``, replaced atomically (see ``AtomicFile``).
public struct PendingFile: Sendable {
    /// Beside the state file, in the daemon's `RuntimeDirectory=`: /run is emptied at boot, as the
    /// kernel's ruleset is, so a record never outlives the ruleset it is about.
    public static let defaultPath: FilePath = "/run/fwenforcer/pending.json"

    public let path: FilePath

    public init(path: FilePath = defaultPath) {
        self.path = path
    }

    /// Where a detached `apply --confirm-within` waiter writes its log lines (besides syslog).
    public var logPath: FilePath {
        let directory = path.removingLastComponent()
        return (directory.string.isEmpty ? FilePath(".") : directory).appending("provisional.log")
    }

    /// Mode 0600: the record holds the previous ruleset, which is as private as the config.
    public func write(_ record: PendingConfirmation) throws {
        try checkDirectory()
        try AtomicFile.write(try AtomicFile.json(record), to: path, mode: 0o600)
    }

    /// The record, or nil when there is none.
    public func read() throws -> PendingConfirmation? {
        try checkDirectory()
        guard let bytes = try AtomicFile.read(path) else { return nil }
        struct Version: Decodable { var formatVersion: Int }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let data = Data(bytes)
        guard let version = try? decoder.decode(Version.self, from: data).formatVersion else {
            throw PendingFileError(path: path.string, reason: "not a fwenforcer pending-confirmation record")
        }
        guard version == PendingConfirmation.currentFormatVersion else {
            throw PendingFileError(path: path.string,
                                   reason: "format version \(version), this fwenforcerd reads \(PendingConfirmation.currentFormatVersion)")
        }
        do {
            return try decoder.decode(PendingConfirmation.self, from: data)
        } catch {
            throw PendingFileError(path: path.string, reason: "unreadable (\(error))")
        }
    }

    /// Refuses a record in a directory that users other than root could write: there anyone
    /// could plant a record naming a process of theirs (root's `confirm` would signal it) or a
    /// "previous" ruleset of their choosing (a rollback would enforce it). A directory that does
    /// not exist yet is no threat: there is no record to read, and writing into it fails.
    func checkDirectory() throws(PendingFileError) {
        let directory = path.removingLastComponent().string.isEmpty ? "." : path.removingLastComponent().string
        var info = stat()
        guard stat(directory, &info) == 0 else { return }
        let mode = info.st_mode & 0o7777
        var problems: [String] = []
        if info.st_uid != 0 { problems.append("its directory \(directory) is owned by \(ownerName(info.st_uid)), not root") }
        if mode & 0o022 != 0 { problems.append("its directory \(directory) (mode \(octal(mode))) is writable by \(mode & 0o020 != 0 ? "group" : "others")") }
        guard problems.isEmpty else {
            throw PendingFileError(path: path.string, reason: problems.joined(separator: " and ")
                + "; a pending-confirmation record must live where only root can write (the default is \(Self.defaultPath))")
        }
    }

    /// Removes the record; no error when it is already gone.
    public func remove() {
        unlink(path.string)
    }
}
#endif
