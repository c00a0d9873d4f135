#if os(Linux)
import Glibc
import SystemPackage

/// Reports, after a short debounce, that watched files may have changed.
///
/// It watches the *directories* that hold each file and the symlinks leading to it, never the file
/// itself (see ``SymlinkChain``), so that every way tools replace a file is seen:
/// - in-place writes (`IN_MODIFY`, `IN_CLOSE_WRITE`) and permission changes (`IN_ATTRIB`);
/// - an editor's write-to-temporary-then-rename (`IN_MOVED_TO`);
/// - a symlink swap, such as a Kubernetes ConfigMap renaming a new `..data` link into place;
/// - delete and recreate (`IN_DELETE`, `IN_CREATE`), including of the directories themselves.
///
/// After every relevant event the links are resolved again and the watches moved to the directories
/// they now lead through. Events are coalesced: the callback runs once the directory has been quiet
/// for `debounce`, and at the latest `maximumDelay` after the first event of a burst, so a writer
/// that never pauses still gets its changes picked up. An inotify queue overflow counts as a change.
///
/// Every change is followed by a callback that starts after it; the callback may also run when
/// nothing that matters changed (a `touch`, a rewrite with the same bytes). The caller re-reads the
/// file and compares its content hash. Create the watcher *before* the first read, so that a change
/// between the read and the watch is not lost.
public final class ConfigWatcher {
    public typealias ChangeHandler = () throws -> Void

    /// The default quiet period before reporting a change.
    public static let defaultDebounce: Duration = .milliseconds(100)
    /// The default longest wait from the first event of a burst to the report.
    public static let defaultMaximumDelay: Duration = .seconds(1)

    /// What is watched on each directory. `IN_ONLYDIR` makes the watch fail rather than follow a
    /// directory that was replaced by a file or link in between.
    private static let directoryEvents = UInt32(
        IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE
            | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
    /// Events about a watched directory itself: it is gone or moved, so the chain must be resolved again.
    private static let directoryGoneEvents = UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)

    private let loop: EventLoop
    private let inotifyFD: Int32
    private var registration: EventLoop.Registration?
    private var timer: EventLoop.Timer?
    private let debounce: Duration
    private let maximumDelay: Duration
    private let onChange: ChangeHandler
    private var paths: [String]
    /// The entry names that matter in each watched directory, by watch descriptor.
    private var watchedNames: [Int32: Set<String>] = [:]
    private var watchedDirectories: [Int32: String] = [:]
    private let clock = ContinuousClock()
    private var burstStart: ContinuousClock.Instant?
    public private(set) var isClosed = false

    /// Starts watching `paths` on `loop`.
    ///
    /// - Throws: ``SystemCallError`` when inotify cannot be set up (e.g. `EMFILE` past
    ///   `fs.inotify.max_user_instances`). A missing file or directory is not an error: the nearest
    ///   existing ancestor is watched until it appears.
    public init(
        paths: [FilePath],
        loop: EventLoop,
        debounce: Duration = ConfigWatcher.defaultDebounce,
        maximumDelay: Duration = ConfigWatcher.defaultMaximumDelay,
        onChange: @escaping ChangeHandler
    ) throws(SystemCallError) {
        precondition(debounce > .zero && maximumDelay >= debounce, "need 0 < debounce <= maximumDelay")
        self.loop = loop
        self.debounce = debounce
        self.maximumDelay = maximumDelay
        self.onChange = onChange
        self.paths = paths.map(\.string)
        inotifyFD = try retryingInterrupts("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        do throws(SystemCallError) {
            try updateWatches()
            registration = try loop.watchReadable(FileDescriptor(rawValue: inotifyFD)) { [unowned self] in
                try self.readEvents()
            }
            timer = try loop.makeTimer { [unowned self] in
                self.burstStart = nil
                try self.onChange()
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
    public func watch(_ paths: [FilePath]) throws(SystemCallError) {
        self.paths = paths.map(\.string)
        try updateWatches()
        noteChange()
    }

    /// Stops watching and closes the inotify descriptor and the debounce timer.
    public func close() {
        if isClosed { return }
        isClosed = true
        if let registration { loop.cancel(registration) }
        timer?.invalidate()
        closeDescriptor(inotifyFD)
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
        for (directory, entryNames) in wanted.sorted(by: { $0.key < $1.key }) {
            let wd = inotify_add_watch(inotifyFD, directory, Self.directoryEvents)
            if wd == -1 {
                let code = errno
                // The directory vanished or was replaced since it was resolved: its parent's watch
                // reports that, and the next resolution picks the right directory.
                if code == ENOENT || code == ENOTDIR { continue }
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

    private func readEvents() throws {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var relevant = false
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(inotifyFD, $0.baseAddress, $0.count) }
            if count == -1 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN { break }
                throw SystemCallError(call: "read", subject: "inotify", code: Errno(rawValue: code))
            }
            if count == 0 { break }
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
                    if isRelevant(wd: wd, mask: mask, name: name) { relevant = true }
                }
            }
        }
        if relevant {
            try updateWatches()
            noteChange()
        }
    }

    private func isRelevant(wd: Int32, mask: UInt32, name: String) -> Bool {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 { return true }
        guard let names = watchedNames[wd] else {
            // An event for a watch already removed, e.g. the IN_IGNORED that inotify_rm_watch causes.
            return false
        }
        if mask & Self.directoryGoneEvents != 0 { return true }
        return names.contains(name)
    }

    /// Schedules the report `debounce` after now, but no later than `maximumDelay` after the burst began.
    private func noteChange() {
        let now = clock.now
        let start = burstStart ?? now
        burstStart = start
        let latest = start.advanced(by: maximumDelay)
        let due = min(now.advanced(by: debounce), latest)
        timer?.schedule(after: max(now.duration(to: due), .nanoseconds(1)))
    }
}
#endif
