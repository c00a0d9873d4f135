#if os(Linux)
import Foundation
import Glibc
import SystemPackage
import Testing
@testable import Enforcer

/// Owner and mode cases on real files (the tests chown to nobody, so they need root).
@Suite(.enabled(if: geteuid() == 0, "needs root to chown test files"))
struct DaemonConfigFileSecurityTests {
    static let nobody: uid_t = 65534

    struct Case: CustomTestStringConvertible, Sendable {
        var owner: uid_t
        var mode: mode_t
        /// Words the refusal must contain; nil when the file is accepted.
        var refusal: [String]?
        var testDescription: String { "owner \(owner) mode \(octal(mode))" }
    }

    static let cases: [Case] = [
        Case(owner: 0, mode: 0o600, refusal: nil),
        Case(owner: 0, mode: 0o644, refusal: nil),
        Case(owner: 0, mode: 0o640, refusal: nil),
        Case(owner: 0, mode: 0o400, refusal: nil),
        Case(owner: 0, mode: 0o620, refusal: ["mode 0620 lets group write it"]),
        Case(owner: 0, mode: 0o602, refusal: ["mode 0602 lets others write it"]),
        Case(owner: 0, mode: 0o666, refusal: ["mode 0666 lets group and others write it"]),
        Case(owner: nobody, mode: 0o600, refusal: ["owned by nobody (uid 65534), not root"]),
        Case(owner: nobody, mode: 0o664, refusal: ["owned by nobody (uid 65534), not root", "lets group write it"]),
        Case(owner: 4242, mode: 0o644, refusal: ["owned by uid 4242, not root"]),
    ]

    @Test(arguments: cases)
    func ownerAndMode(_ c: Case) throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let file = dir("fwenforcer.conf")
        try daemonWriteInPlace(file, "[host]\n")
        try daemonCheck(chown(file, c.owner, 0), "chown")
        try daemonCheck(chmod(file, c.mode), "chmod")
        guard let words = c.refusal else {
            try ConfigFileSecurity.check(FilePath(file))
            return
        }
        let error = try #require(throws: InsecureConfigFile.self) { try ConfigFileSecurity.check(FilePath(file)) }
        let message = error.description
        #expect(message.hasPrefix("refusing config \(file): "))
        for word in words { #expect(message.contains(word), "\(message)") }
        #expect(message.contains("chown root:root \(file); chmod 600 \(file) (or 644"))
        #expect(error.ownerUID == c.owner && error.mode == c.mode)
    }

    /// The check applies to what the path resolves to, and the message names both.
    @Test func symlinkIsResolvedBeforeTheCheck() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonCheck(mkdir(dir("..2026_11_21"), 0o755), "mkdir")
        let target = dir("..2026_11_21/fwenforcer.conf")
        try daemonWriteInPlace(target, "[host]\n", mode: 0o644)
        try daemonCheck(symlink("..2026_11_21", dir("..data")), "symlink")
        try daemonCheck(symlink("..data/fwenforcer.conf", dir("fwenforcer.conf")), "symlink")
        try ConfigFileSecurity.check(FilePath(dir("fwenforcer.conf")))

        try daemonCheck(chmod(target, 0o666), "chmod")
        let error = try #require(throws: InsecureConfigFile.self) {
            try ConfigFileSecurity.check(FilePath(dir("fwenforcer.conf")))
        }
        #expect(error.resolvedPath == target)
        #expect(error.description.contains("\(dir("fwenforcer.conf")) (resolves to \(target))"))
        #expect(error.description.contains("chmod 600 \(target)"))
    }

    @Test func missingFileIsASystemCallError() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let error = try #require(throws: SystemCallError.self) { try ConfigFileSecurity.check(FilePath(dir("absent.conf"))) }
        #expect(error.code == .noSuchFileOrDirectory)
        #expect(error.description.contains(dir("absent.conf")))
    }

    @Test func directoryIsNotAConfigFile() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let error = try #require(throws: InsecureConfigFile.self) { try ConfigFileSecurity.check(FilePath(dir.path)) }
        #expect(error.description.contains("not a regular file"))
    }

    /// Directories others could rearrange are warnings; root's sticky directories (like /tmp) are fine.
    @Test func writableDirectoriesAreWarnings() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonCheck(mkdir(dir("shared"), 0o755), "mkdir")
        try daemonCheck(chmod(dir("shared"), 0o777), "chmod")
        try daemonCheck(mkdir(dir("sticky"), 0o755), "mkdir")
        try daemonCheck(chmod(dir("sticky"), 0o1777), "chmod")
        try daemonCheck(mkdir(dir("nobodys"), 0o755), "mkdir")
        try daemonCheck(chown(dir("nobodys"), Self.nobody, 0), "chown")
        for sub in ["shared", "sticky", "nobodys"] {
            try daemonWriteInPlace(dir(sub + "/fwenforcer.conf"), "[host]\n")
        }

        let shared = try ConfigFileSecurity.check(FilePath(dir("shared/fwenforcer.conf")))
        #expect(shared == [ConfigDirectoryWarning(directory: dir("shared"), ownerUID: 0, mode: 0o777)])
        #expect(shared.first?.description.contains("chmod go-w \(dir("shared"))") == true)
        #expect(try ConfigFileSecurity.check(FilePath(dir("sticky/fwenforcer.conf"))).isEmpty)
        let nobodys = try ConfigFileSecurity.check(FilePath(dir("nobodys/fwenforcer.conf")))
        #expect(nobodys.map(\.directory) == [dir("nobodys")])
    }

    /// A writer with access to the directory swaps the file, by rename, between root's version and
    /// one owned by nobody and writable by all, as fast as it can, while the daemon reads. The
    /// owner and mode are those of the descriptor the bytes come from, so the other version is
    /// refused every time and never read.
    @Test func aFileSwappedWhileItIsCheckedIsNeverReadUnchecked() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let (good, evil, path) = (dir("good"), dir("evil"), dir("fwenforcer.conf"))
        try daemonWriteInPlace(good, "[host]\nroles = [\"CCO\"]\n")
        try daemonWriteInPlace(evil, "[host]\nroles = [\"CCM\"]\n")
        try daemonCheck(chown(evil, Self.nobody, 0), "chown")
        try daemonCheck(chmod(evil, 0o666), "chmod")
        try daemonCheck(link(good, path), "link")

        final class Swapper: @unchecked Sendable {
            let lock = NSLock()
            var stop = false
            var swaps = 0
            var stopped: Bool { lock.withLock { stop } }
        }
        let swapper = Swapper()
        let done = DispatchSemaphore(value: 0)
        Thread {
            let tmp = dir(".swap")
            while !swapper.stopped {
                for source in [evil, good] {
                    _ = link(source, tmp)
                    _ = rename(tmp, path)
                }
                swapper.swaps += 1
            }
            done.signal()
        }.start()

        var (accepted, refused, unchecked) = (0, 0, 0)
        let expected = Array("[host]\nroles = [\"CCO\"]\n".utf8)
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(1500))
        while ContinuousClock.now < deadline {
            do {
                let file = try ConfigFileSecurity.read(FilePath(path))
                if file.bytes == expected { accepted += 1 } else { unchecked += 1 }
            } catch is InsecureConfigFile {
                refused += 1
            } catch {
                Issue.record("\(error)")
                break
            }
        }
        swapper.lock.withLock { swapper.stop = true }
        done.wait()
        print("config swap race: \(swapper.swaps) swaps, \(accepted) reads of root's file, \(refused) refusals, \(unchecked) unchecked reads")
        #expect(unchecked == 0, "the other version was read after root's passed the check")
        #expect(accepted > 0 && refused > 0, "both versions were met: \(accepted) accepted, \(refused) refused")
    }

    /// Neither a FIFO put in the file's place nor a symlink swapped in after the resolution is
    /// followed: the FIFO is not opened blocking, and the link fails the O_NOFOLLOW open.
    @Test func aFifoIsRefusedWithoutBlocking() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonCheck(mkfifo(dir("fwenforcer.conf"), 0o600), "mkfifo")
        let error = try #require(throws: InsecureConfigFile.self) { try ConfigFileSecurity.read(FilePath(dir("fwenforcer.conf"))) }
        #expect(error.description.contains("not a regular file"))
    }
}
#endif
