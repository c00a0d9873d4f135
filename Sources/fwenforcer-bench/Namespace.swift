import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Moves the calling thread into a fresh, anonymous network namespace (`unshare(CLONE_NEWNET)`).
///
/// Anonymous on purpose: it has no name under /run/netns, so nothing can be left behind. The
/// kernel frees it (and every table in it) when the last socket and process in it are gone; a
/// Ctrl-C or a crash of the benchmark cannot leak it, and the root namespace's firewall is never
/// touched. Sockets and children created by this thread afterwards live in it. Calling it again
/// leaves the previous namespace to be freed once its sockets are closed and children gone.
func enterFreshNetworkNamespace() throws {
    // Glibc's Swift module hides unshare (it needs _GNU_SOURCE), so it is looked up at run time.
    typealias Unshare = @convention(c) (Int32) -> Int32
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else { throw BenchError("unshare not found") }
    let cloneNewNet: Int32 = 0x4000_0000
    guard unsafeBitCast(sym, to: Unshare.self)(cloneNewNet) == 0 else {
        throw BenchError("unshare(CLONE_NEWNET): \(String(cString: strerror(errno))) (the benchmark must run as root)")
    }
}

/// The daemon child, killed by the SIGINT/SIGTERM handler so a Ctrl-C leaves no process behind
/// (it is also spawned with a parent-death signal).
nonisolated(unsafe) var runningDaemon: pid_t = 0

/// On SIGINT/SIGTERM: kill the daemon child and exit; the anonymous namespaces go with the process.
func installInterruptHandler() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { s in
            if runningDaemon > 0 { kill(runningDaemon, SIGKILL) }
            _exit(128 + s)
        }
    }
}
