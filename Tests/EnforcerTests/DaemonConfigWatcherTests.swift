#if os(Linux)
import Glibc
import SystemPackage
import Testing
@testable import Enforcer

/// The config watcher against the ways tools really replace files, with real inotify and timers.
@Suite struct DaemonConfigWatcherTests {
    /// A loop, a watcher on `dir/fwenforcer.conf`, and what each notification saw in the file.
    final class Harness {
        let directory: DaemonTemporaryDirectory
        let config: String
        let loop: EventLoop
        var watcher: ConfigWatcher!
        /// The file's content read at each notification, as the daemon would re-read it.
        var seen: [String?] = []

        /// Every mode the watcher reported, in order.
        var modes: [ConfigWatcher.Mode] = []

        init(debounce: Duration = .milliseconds(20), maximumDelay: Duration = .seconds(1),
             pollInterval: Duration = ConfigWatcher.defaultPollInterval,
             prepare: (DaemonTemporaryDirectory) throws -> Void = { try daemonWriteInPlace($0("fwenforcer.conf"), "v1") },
             addWatch: @escaping (Int32, String, UInt32) -> (wd: Int32, errno: Int32) = { fd, path, mask in
                 let wd = inotify_add_watch(fd, path, mask)
                 return (wd, wd == -1 ? errno : 0)
             }) throws {
            directory = try DaemonTemporaryDirectory()
            config = directory("fwenforcer.conf")
            loop = try EventLoop()
            try prepare(directory)
            watcher = try ConfigWatcher(
                paths: [FilePath(config)], loop: loop, debounce: debounce, maximumDelay: maximumDelay,
                pollInterval: pollInterval, addWatch: addWatch
            ) { [unowned self] in
                self.seen.append(daemonReadFile(self.config))
            } onModeChange: { [unowned self] mode in
                self.modes.append(mode)
            }
        }

        /// Runs the loop until a notification has seen `content`.
        func waitFor(_ content: String, timeout: Duration = .seconds(3)) throws -> Bool {
            try loop.run(until: { self.seen.last == content }, timeout: timeout)
        }

        /// Runs the loop for `period` and returns how many notifications came in it.
        func notifications(during period: Duration) throws -> Int {
            let before = seen.count
            try loop.run(until: { false }, timeout: period)
            return seen.count - before
        }

        func close() {
            watcher?.close()
            loop.close()
            directory.remove()
        }
    }

    @Test func inPlaceWriteIsSeen() throws {
        let h = try Harness()
        defer { h.close() }
        try daemonWriteInPlace(h.config, "v2")
        #expect(try h.waitFor("v2"))
    }

    @Test func editorWriteAndRenameIsSeen() throws {
        let h = try Harness()
        defer { h.close() }
        try daemonWriteInPlace(h.directory(".fwenforcer.conf.swp"), "v2")
        try daemonCheck(rename(h.directory(".fwenforcer.conf.swp"), h.config), "rename")
        #expect(try h.waitFor("v2"))
    }

    /// A rename into place is a whole file: it is reported at once, not after the debounce (2 s here).
    @Test func renameIntoPlaceIsReportedWithoutTheDebounce() throws {
        let h = try Harness(debounce: .seconds(2), maximumDelay: .seconds(5))
        defer { h.close() }
        try daemonWriteInPlace(h.directory(".fwenforcer.conf.tmp"), "v2")
        let start = ContinuousClock.now
        try daemonCheck(rename(h.directory(".fwenforcer.conf.tmp"), h.config), "rename")
        #expect(try h.waitFor("v2", timeout: .milliseconds(500)))
        #expect(ContinuousClock.now - start < .milliseconds(500))
        #expect(h.seen == ["v2"])
    }

    /// The same for a Kubernetes ConfigMap update: the new `..data` link renamed into place.
    @Test func symlinkSwapIsReportedWithoutTheDebounce() throws {
        let h = try Harness(debounce: .seconds(2), maximumDelay: .seconds(5)) { dir in
            try daemonCheck(mkdir(dir("..1"), 0o755), "mkdir")
            try daemonWriteInPlace(dir("..1/fwenforcer.conf"), "v1", mode: 0o644)
            try daemonCheck(symlink("..1", dir("..data")), "symlink")
            try daemonCheck(symlink("..data/fwenforcer.conf", dir("fwenforcer.conf")), "symlink")
        }
        defer { h.close() }
        try daemonCheck(mkdir(h.directory("..2"), 0o755), "mkdir")
        try daemonWriteInPlace(h.directory("..2/fwenforcer.conf"), "v2", mode: 0o644)
        try daemonCheck(symlink("..2", h.directory("..data_tmp")), "symlink")
        try daemonCheck(rename(h.directory("..data_tmp"), h.directory("..data")), "rename")
        #expect(try h.waitFor("v2", timeout: .milliseconds(500)))
    }

    /// An in-place write may still be going on: it keeps waiting for the quiet period.
    @Test func inPlaceWriteWaitsForTheDebounce() throws {
        let h = try Harness(debounce: .milliseconds(400), maximumDelay: .seconds(5))
        defer { h.close() }
        try daemonWriteInPlace(h.config, "v2")
        #expect(try h.notifications(during: .milliseconds(250)) == 0)
        #expect(try h.waitFor("v2"))
    }

    @Test func deleteAndRecreateIsSeen() throws {
        let h = try Harness()
        defer { h.close() }
        try daemonCheck(unlink(h.config), "unlink")
        #expect(try h.loop.run(until: { h.seen.last == .some(nil) }, timeout: .seconds(3)))
        try daemonWriteInPlace(h.config, "v2")
        #expect(try h.waitFor("v2"))
    }

    /// The Kubernetes ConfigMap layout: `fwenforcer.conf -> ..data/fwenforcer.conf`,
    /// `..data -> ..<timestamp>`; an update renames a new `..data` link into place and removes the
    /// old directory. Two updates in a row show the watches follow the new target.
    @Test func configMapSymlinkSwapIsSeen() throws {
        let h = try Harness { dir in
            try daemonCheck(mkdir(dir("..2026_11_21_00_00_00.1"), 0o755), "mkdir")
            try daemonWriteInPlace(dir("..2026_11_21_00_00_00.1/fwenforcer.conf"), "v1", mode: 0o644)
            try daemonCheck(symlink("..2026_11_21_00_00_00.1", dir("..data")), "symlink")
            try daemonCheck(symlink("..data/fwenforcer.conf", dir("fwenforcer.conf")), "symlink")
        }
        defer { h.close() }
        #expect(h.watcher.watchedEntries[h.directory.path] == ["fwenforcer.conf", "..data"])

        func update(from old: String, to new: String, content: String) throws {
            let dir = h.directory
            try daemonCheck(mkdir(dir(new), 0o755), "mkdir")
            try daemonWriteInPlace(dir(new + "/fwenforcer.conf"), content, mode: 0o644)
            try daemonCheck(symlink(new, dir("..data_tmp")), "symlink")
            try daemonCheck(rename(dir("..data_tmp"), dir("..data")), "rename")
            try daemonCheck(unlink(dir(old + "/fwenforcer.conf")), "unlink")
            try daemonCheck(rmdir(dir(old)), "rmdir")
        }
        try update(from: "..2026_11_21_00_00_00.1", to: "..2026_11_21_00_01_00.2", content: "v2")
        #expect(try h.waitFor("v2"))
        try update(from: "..2026_11_21_00_01_00.2", to: "..2026_11_21_00_02_00.3", content: "v3")
        #expect(try h.waitFor("v3"))
        #expect(h.watcher.watchedEntries[h.directory("..2026_11_21_00_02_00.3")] == ["fwenforcer.conf"])
        #expect(h.watcher.watchedEntries[h.directory("..2026_11_21_00_01_00.2")] == nil)
    }

    /// The whole directory removed and made again: the watch moves to the parent and back.
    @Test func directoryDeleteAndRecreateIsSeen() throws {
        let h = try Harness { dir in
            try daemonCheck(mkdir(dir("etc"), 0o755), "mkdir")
            try daemonWriteInPlace(dir("etc/fwenforcer.conf"), "v1")
        }
        defer { h.close() }
        let nested = h.directory("etc/fwenforcer.conf")
        h.watcher.close()
        h.watcher = try ConfigWatcher(paths: [FilePath(nested)], loop: h.loop, debounce: .milliseconds(20)) {
            h.seen.append(daemonReadFile(nested))
        }
        _ = try run(["rm", "-rf", h.directory("etc")])
        #expect(try h.loop.run(until: { h.seen.last == .some(nil) }, timeout: .seconds(3)))
        try daemonCheck(mkdir(h.directory("etc"), 0o755), "mkdir")
        try daemonWriteInPlace(nested, "v2")
        #expect(try h.loop.run(until: { h.seen.last == "v2" }, timeout: .seconds(3)))
        // And the new directory is watched again.
        try daemonWriteInPlace(nested, "v3")
        #expect(try h.loop.run(until: { h.seen.last == "v3" }, timeout: .seconds(3)))
    }

    @Test func missingFileIsSeenWhenCreated() throws {
        let h = try Harness { _ in }
        defer { h.close() }
        try daemonWriteInPlace(h.config, "v1")
        #expect(try h.waitFor("v1"))
    }

    /// Twenty writes 2 ms apart (spanning ~40 ms, under the 100 ms default debounce) give one
    /// notification, and it comes after the last write.
    @Test func burstOfWritesCoalescesIntoOneNotification() throws {
        let h = try Harness(debounce: ConfigWatcher.defaultDebounce)
        defer { h.close() }
        var written = 0
        let writer = try h.loop.makeTimer {
            written += 1
            try daemonWriteInPlace(h.config, "v\(written)")
        }
        writer.schedule(after: .milliseconds(1), repeating: .milliseconds(2))
        try h.loop.run(until: { written == 20 }, timeout: .seconds(3))
        writer.cancel()
        #expect(written == 20)
        #expect(try h.waitFor("v20"))
        #expect(try h.notifications(during: .milliseconds(300)) == 0)
        #expect(h.seen == ["v20"])
    }

    /// A writer that never pauses for the debounce still gets picked up, within `maximumDelay`.
    @Test func continuousWritesAreReportedWithinTheMaximumDelay() throws {
        let h = try Harness(debounce: .milliseconds(100), maximumDelay: .milliseconds(250))
        defer { h.close() }
        var written = 0
        let writer = try h.loop.makeTimer {
            written += 1
            try daemonWriteInPlace(h.config, "v\(written)")
        }
        writer.schedule(after: .milliseconds(1), repeating: .milliseconds(20))
        #expect(try h.loop.run(until: { !h.seen.isEmpty }, timeout: .seconds(3)))
        #expect(written < 40)  // reported while the writes were still going on
        writer.cancel()
        // The last write is reported too.
        let last = "v\(written)"
        #expect(try h.waitFor(last))
    }

    @Test func idleAndUnrelatedFilesGiveNoNotification() throws {
        let h = try Harness()
        defer { h.close() }
        #expect(try h.notifications(during: .milliseconds(200)) == 0)
        try daemonWriteInPlace(h.directory("other.conf"), "x")
        try daemonWriteInPlace(h.directory("fwenforcer.conf.bak"), "x")
        try daemonCheck(unlink(h.directory("other.conf")), "unlink")
        #expect(try h.notifications(during: .milliseconds(200)) == 0)
    }

    /// More events than the inotify queue holds, none about the config: the overflow alone must count
    /// as a change, since the lost events could have been about it.
    @Test func queueOverflowCountsAsAChange() throws {
        let h = try Harness()
        defer { h.close() }
        let limit = Int(daemonReadFile("/proc/sys/fs/inotify/max_queued_events")?.filter(\.isNumber) ?? "") ?? 16384
        try #require(limit <= 1 << 20, "max_queued_events \(limit) is too large to overflow in a test")
        try daemonWriteInPlace(h.directory("a"), "")
        try daemonWriteInPlace(h.directory("b"), "")
        // Alternating names: inotify merges an event only into an identical one queued just before it.
        for i in 0..<(limit + 64) {
            try daemonCheck(utimensat(AT_FDCWD, h.directory(i % 2 == 0 ? "a" : "b"), nil, 0), "utimensat")
        }
        #expect(try h.loop.run(until: { h.seen.count == 1 }, timeout: .seconds(3)))
    }

    /// A second file (a catalog named by the config) joins the watch; a change to it is reported.
    @Test func watchedPathsCanBeReplaced() throws {
        let h = try Harness()
        defer { h.close() }
        try daemonWriteInPlace(h.directory("catalog.toml"), "c1")
        h.watcher.watch([FilePath(h.config), FilePath(h.directory("catalog.toml"))])
        #expect(try h.loop.run(until: { h.seen.count == 1 }, timeout: .seconds(3)))  // watch() itself reports
        try daemonWriteInPlace(h.directory("catalog.toml"), "c2")
        #expect(try h.loop.run(until: { h.seen.count == 2 }, timeout: .seconds(3)))
    }
}

/// inotify refusing watches (a full `max_user_watches` table: ENOSPC; dropped capabilities:
/// EACCES) through the watcher's `inotify_add_watch` seam; the daemon test does it for real.
@Suite struct DaemonConfigWatcherDegradedTests {
    final class WatchTable: @unchecked Sendable {
        var refusal: Int32? = ENOSPC
    }

    @Test(arguments: [ENOSPC, EACCES])
    func aRefusedWatchDegradesToPollingAndBack(_ code: Int32) throws {
        let table = WatchTable()
        table.refusal = code
        let h = try DaemonConfigWatcherTests.Harness(pollInterval: .milliseconds(100), addWatch: { fd, path, mask in
            if let refusal = table.refusal { return (-1, refusal) }
            let wd = inotify_add_watch(fd, path, mask)
            return (wd, wd == -1 ? errno : 0)
        })
        defer { h.close() }
        let refused = SystemCallError(call: "inotify_add_watch", subject: h.directory.path, code: Errno(rawValue: code))
        #expect(h.watcher.mode == .polling(refused))
        #expect(h.modes == [.polling(refused)])
        #expect(h.watcher.fallbacks == 1)

        // Polling sees an in-place write of the same size (v1 -> v2), and a rename over the file.
        try daemonWriteInPlace(h.config, "v2")
        #expect(try h.waitFor("v2"))
        try daemonWriteInPlace(h.directory(".swp"), "v3")
        try daemonCheck(rename(h.directory(".swp"), h.config), "rename")
        #expect(try h.waitFor("v3"))
        // Nothing changes, nothing is reported.
        #expect(try h.notifications(during: .milliseconds(400)) == 0)
        #expect(h.watcher.mode == .polling(refused))

        // Watches free again: back to inotify at the next poll, and changes are still seen.
        table.refusal = nil
        #expect(try h.loop.run(until: { h.watcher.mode == .inotify }, timeout: .seconds(2)))
        #expect(h.modes == [.polling(refused), .inotify])
        try daemonWriteInPlace(h.config, "v4")
        #expect(try h.waitFor("v4"))
        #expect(h.watcher.fallbacks == 1)
    }
}

/// Path resolution through symlinks: which directory entries decide what a path names.
@Suite struct DaemonSymlinkChainTests {
    @Test func configMapLayout() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonCheck(mkdir(dir("..2026"), 0o755), "mkdir")
        try daemonWriteInPlace(dir("..2026/fwenforcer.conf"), "x")
        try daemonCheck(symlink("..2026", dir("..data")), "symlink")
        try daemonCheck(symlink("..data/fwenforcer.conf", dir("fwenforcer.conf")), "symlink")
        let chain = SymlinkChain.resolve(dir("fwenforcer.conf"))
        #expect(chain.target == dir("..2026/fwenforcer.conf"))
        #expect(chain.entries == [
            .init(directory: dir.path, name: "fwenforcer.conf"),
            .init(directory: dir.path, name: "..data"),
            .init(directory: dir("..2026"), name: "fwenforcer.conf"),
        ])
    }

    @Test func absoluteLinksDotDotAndMissingComponents() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonCheck(mkdir(dir("a"), 0o755), "mkdir")
        try daemonWriteInPlace(dir("a/f"), "x")
        try daemonCheck(symlink(dir("a"), dir("abs")), "symlink")
        // "abs/../a/f": ".." applies to where abs leads (physical), as the kernel resolves it.
        let chain = SymlinkChain.resolve(dir("abs/../a/./f"))
        #expect(chain.target == dir("a/f"))
        #expect(chain.entries == [.init(directory: dir.path, name: "abs"), .init(directory: dir("a"), name: "f")])

        let missing = SymlinkChain.resolve(dir("gone/f"))
        #expect(missing.target == nil)
        #expect(missing.entries == [.init(directory: dir.path, name: "gone")])
    }

    @Test func linkLoopsEnd() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonCheck(symlink("b", dir("a")), "symlink")
        try daemonCheck(symlink("a", dir("b")), "symlink")
        let chain = SymlinkChain.resolve(dir("a"))
        #expect(chain.target == nil)
        #expect(chain.entries.count == SymlinkChain.maximumLinks + 1)
        #expect(Set(chain.entries.map(\.name)) == ["a", "b"])
    }
}

#endif
