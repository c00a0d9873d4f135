#if os(Linux)
import Glibc
import SystemPackage

/// Reports that watched files may have changed: at once for a rename into place, after a short
/// debounce for anything else.
///
/// It watches the *directories* that hold each file and the symlinks leading to it, never the file
/// itself (see ``SymlinkChain``), so that every way tools replace a file is seen:
/// - in-place writes (`IN_MODIFY`, `IN_CLOSE_WRITE`) and permission changes (`IN_ATTRIB`);
/// - an editor's write-to-temporary-then-rename (`IN_MOVED_TO`);
/// - a symlink swap, such as a Kubernetes ConfigMap renaming a new `..data` link into place;
/// - delete and recreate (`IN_DELETE`, `IN_CREATE`), including of the directories themselves.
///
/// After every relevant event the links are resolved again and the watches moved to the directories
/// they now lead through. A rename onto a name that matters (`IN_MOVED_TO`: the write-then-rename of
/// editors, Ansible, consul-template, the etcd watcher, or a new `..data` link) puts a complete file
/// in place in one step, so it is reported on the loop's next turn, without waiting. Other events are
/// coalesced, since an in-place write may still be going on: the callback runs once the directory
/// has been quiet for `debounce`, and at the latest `maximumDelay` after the first event of a burst,
/// so a writer that never pauses still gets its changes picked up. An inotify queue overflow counts
/// as a (debounced) change.
///
/// Every change is followed by a callback that starts after it; the callback may also run when
/// nothing that matters changed (a `touch`, a rewrite with the same bytes). The caller re-reads the
/// file and compares its content hash. Create the watcher *before* the first read, so that a change
/// between the read and the watch is not lost.
///
/// When inotify fails for a reason other than a directory vanishing (`ENOSPC` once
/// `fs.inotify.max_user_watches` is used up by systemd and containerd, `EACCES` under dropped
/// capabilities, `EMFILE` past `max_user_instances`), the watcher degrades instead of failing: it
/// polls, comparing a ``FileFingerprint`` (stat and SHA-256 of each file) every `pollInterval`, and
/// tries inotify again at each poll. `onModeChange` hears of both transitions, so that the daemon
/// can warn and count them; nothing here ends the event loop.
public final class ConfigWatcher {
    public typealias ChangeHandler = () throws -> Void

    /// How changes are noticed.
    public enum Mode: Equatable, Sendable {
        case inotify
        /// inotify failed with this error: the files are stat'ed and hashed every `pollInterval`.
        case polling(SystemCallError)
    }

    /// The default quiet period before reporting a change.
    public static let defaultDebounce: Duration = .milliseconds(100)
    /// The default longest wait from the first event of a burst to the report.
    public static let defaultMaximumDelay: Duration = .seconds(1)
    /// The default period of polling after inotify failed.
    public static let defaultPollInterval: Duration = .seconds(3)

    /// What is watched on each directory. `IN_ONLYDIR` makes the watch fail rather than follow a
    /// directory that was replaced by a file or link in between.
    private static let directoryEvents = UInt32(
        IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE
            | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
    /// Events about a watched directory itself: it is gone or moved, so the chain must be resolved again.
    private static let directoryGoneEvents = UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)

    private let loop: EventLoop
    /// nil while `inotify_init1` fails.
    private var inotifyFD: Int32?
    private var registration: EventLoop.Registration?
    private var timer: EventLoop.Timer?
    private var pollTimer: EventLoop.Timer?
    private let debounce: Duration
    private let maximumDelay: Duration
    private let pollInterval: Duration
    private let budget: DrainBudget
    private let onChange: ChangeHandler
    private let onModeChange: (Mode) -> Void
    /// `inotify_add_watch`, replaceable so that tests can make it fail as a full watch table does.
    private let addWatch: (Int32, String, UInt32) -> (wd: Int32, errno: Int32)
    public private(set) var mode: Mode = .inotify
    /// Times the watcher fell back from inotify to polling.
    public private(set) var fallbacks = 0
    /// The files as the last poll saw them (polling only).
    private var fingerprint: FileFingerprint?
    private var paths: [String]
    /// The entry names that matter in each watched directory, by watch descriptor.
    private var watchedNames: [Int32: Set<String>] = [:]
    private var watchedDirectories: [Int32: String] = [:]
    private let clock = ContinuousClock()
    private var burstStart: ContinuousClock.Instant?
    public private(set) var isClosed = false

    /// Starts watching `paths` on `loop`.
    ///
    /// - Throws: ``SystemCallError`` only when the loop cannot take the watcher's timers or
    ///   descriptor. A missing file or directory is not an error (the nearest existing ancestor is
    ///   watched until it appears), and an inotify failure means polling.
    public init(
        paths: [FilePath],
        loop: EventLoop,
        debounce: Duration = ConfigWatcher.defaultDebounce,
        maximumDelay: Duration = ConfigWatcher.defaultMaximumDelay,
        pollInterval: Duration = ConfigWatcher.defaultPollInterval,
        budget: DrainBudget = .perTurn,
        addWatch: @escaping (Int32, String, UInt32) -> (wd: Int32, errno: Int32) = { fd, path, mask in
            let wd = inotify_add_watch(fd, path, mask)
            return (wd, wd == -1 ? errno : 0)
        },
        onChange: @escaping ChangeHandler,
        onModeChange: @escaping (Mode) -> Void = { _ in }
    ) throws(SystemCallError) {
        precondition(debounce > .zero && maximumDelay >= debounce && pollInterval > .zero,
                     "need 0 < debounce <= maximumDelay and a positive poll interval")
        self.loop = loop
        self.debounce = debounce
        self.maximumDelay = maximumDelay
        self.pollInterval = pollInterval
        self.budget = budget
        self.addWatch = addWatch
        self.onChange = onChange
        self.onModeChange = onModeChange
        self.paths = paths.map(\.string)
        do throws(SystemCallError) {
            timer = try loop.makeTimer { [unowned self] in
                self.burstStart = nil
                try self.onChange()
            }
            pollTimer = try loop.makeTimer { [unowned self] in self.poll() }
            do throws(SystemCallError) {
                try startInotify()
            } catch {
                degrade(error)
            }
        } catch {
            close()
            throw error
        }
    }
    deinit {
        assert(isClosed, "leak of an open ConfigWatcher: call close()")
    }

    /// Replaces the watched paths (e.g. when a new config names another catalog file) and reports a change.
    public func watch(_ paths: [FilePath]) {
        self.paths = paths.map(\.string)
        if case .polling = mode {
            fingerprint = FileFingerprint.of(self.paths)
        } else {
            do throws(SystemCallError) {
                try updateWatches()
            } catch {
                degrade(error)
            }
        }
        noteChange()
    }

    /// Stops watching and closes the inotify descriptor and the timers.
    public func close() {
        if isClosed { return }
        isClosed = true
        if let registration { loop.cancel(registration) }
        registration = nil
        timer?.invalidate()
        pollTimer?.invalidate()
        if let inotifyFD { closeDescriptor(inotifyFD) }
        inotifyFD = nil
    }

    // MARK: Degraded mode

    /// Opens inotify if needed and watches every directory; throws what inotify refused.
    private func startInotify() throws(SystemCallError) {
        if inotifyFD == nil {
            let fd = try retryingInterrupts("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
            inotifyFD = fd
            do throws(SystemCallError) {
                registration = try loop.watchReadable(FileDescriptor(rawValue: fd)) { [unowned self] in
                    self.readEvents()
                }
            } catch {
                closeDescriptor(fd)
                inotifyFD = nil
                throw error
            }
        }
        try updateWatches()
    }

    /// inotify failed: poll from now on (a change may have been missed, so one is reported).
    private func degrade(_ error: SystemCallError) {
        let entering: Bool
        if case .polling = mode { entering = false } else { entering = true }
        mode = .polling(error)
        guard entering else { return }
        fallbacks += 1
        fingerprint = FileFingerprint.of(paths)
        pollTimer?.schedule(after: pollInterval, repeating: pollInterval)
        onModeChange(mode)
        noteChange()
    }

    /// One poll: reports a change when the fingerprint moved, then tries inotify again.
    private func poll() {
        guard case .polling = mode else { return }
        let now = FileFingerprint.of(paths)
        if now != fingerprint {
            fingerprint = now
            noteChange()
        }
        do throws(SystemCallError) {
            try startInotify()
        } catch {
            mode = .polling(error)
            return
        }
        mode = .inotify
        fingerprint = nil
        pollTimer?.cancel()
        onModeChange(mode)
        // Between the last poll and the new watches a change could have gone unseen.
        noteChange()
    }

    // MARK: Watches

    /// Resolves every path again and moves the watches to the directories that now decide them.
    private func updateWatches() throws(SystemCallError) {
        var wanted: [String: Set<String>] = [:]
        for path in paths {
            for entry in SymlinkChain.resolve(path).entries {
                wanted[entry.directory, default: []].insert(entry.name)
            }
        }
        var names: [Int32: Set<String>] = [:]
        var directories: [Int32: String] = [:]
        guard let inotifyFD else { throw SystemCallError(call: "inotify_init1", code: .badFileDescriptor) }
        for (directory, entryNames) in wanted.sorted(by: { $0.key < $1.key }) {
            let (wd, code) = addWatch(inotifyFD, directory, Self.directoryEvents)
            if wd == -1 {
                // The directory vanished or was replaced since it was resolved: its parent's watch
                // reports that, and the next resolution picks the right directory.
                if code == ENOENT || code == ENOTDIR { continue }
                // The watches added so far stay known, so their events still count while polling.
                watchedNames.merge(names) { $0.union($1) }
                watchedDirectories.merge(directories) { $1 }
                throw SystemCallError(call: "inotify_add_watch", subject: directory, code: Errno(rawValue: code))
            }
            names[wd, default: []].formUnion(entryNames)
            directories[wd] = directory
        }
        for wd in watchedNames.keys where names[wd] == nil {
            _ = inotify_rm_watch(inotifyFD, wd)
        }
        watchedNames = names
        watchedDirectories = directories
    }

    /// The directories watched and the entry names that matter in each, for tests and diagnostics.
    var watchedEntries: [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for (wd, directory) in watchedDirectories { result[directory] = watchedNames[wd] }
        return result
    }

    // MARK: Events

    private func readEvents() {
        guard let inotifyFD else { return }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var relevant = false
        var renamedIntoPlace = false
        // Bounded: a flood of events in a watched directory must not hold the loop; the rest is
        // read on the next turn (the descriptor is level-triggered).
        var meter = DrainBudget.Meter(budget)
        var more = true
        while more {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(inotifyFD, $0.baseAddress, $0.count) }
            if count == -1 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN { break }
                // Not expected from an inotify descriptor; whatever it is, polling still works.
                dropInotify()
                degrade(SystemCallError(call: "read", subject: "inotify", code: Errno(rawValue: code)))
                return
            }
            if count == 0 { break }
            more = meter.allowsAnother()
            buffer.withUnsafeBytes { raw in
                var offset = 0
                // struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
                while offset + 16 <= count {
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = raw[(offset + 16)..<(offset + 16 + length)]
                    let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                    offset += 16 + length
                    switch relevance(wd: wd, mask: mask, name: name) {
                    case .none: break
                    case .settling: relevant = true
                    case .complete: relevant = true; renamedIntoPlace = true
                    }
                }
            }
        }
        if relevant {
            do throws(SystemCallError) {
                try updateWatches()
            } catch {
                degrade(error)
            }
            noteChange(complete: renamedIntoPlace)
        }
    }

    /// Closes an inotify descriptor that cannot be read; polling opens a new one when it can.
    private func dropInotify() {
        if let registration { loop.cancel(registration) }
        registration = nil
        if let inotifyFD { closeDescriptor(inotifyFD) }
        inotifyFD = nil
        watchedNames = [:]
        watchedDirectories = [:]
    }

    /// What one event says about the watched files.
    private enum Relevance {
        /// Nothing that decides what a watched path names.
        case none
        /// A change that may still be under way (an in-place write, a delete, a lost event).
        case settling
        /// A rename put a whole entry in place at once: nothing about it is still being written.
        case complete
    }

    private func relevance(wd: Int32, mask: UInt32, name: String) -> Relevance {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 { return .settling }
        guard let names = watchedNames[wd] else {
            // An event for a watch already removed, e.g. the IN_IGNORED that inotify_rm_watch causes.
            return .none
        }
        if mask & Self.directoryGoneEvents != 0 { return .settling }
        guard names.contains(name) else { return .none }
        return mask & UInt32(IN_MOVED_TO) != 0 ? .complete : .settling
    }

    /// Schedules the report: on the loop's next turn when the change is `complete` (a rename into
    /// place), else `debounce` after now but no later than `maximumDelay` after the burst began.
    private func noteChange(complete: Bool = false) {
        let now = clock.now
        let start = burstStart ?? now
        burstStart = start
        let latest = start.advanced(by: maximumDelay)
        let due = complete ? now : min(now.advanced(by: debounce), latest)
        timer?.schedule(after: max(now.duration(to: due), .nanoseconds(1)))
    }
}
#endif
