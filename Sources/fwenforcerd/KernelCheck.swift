import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging

/// The start-time kernel check of `run` and `apply` (KernelRequirements): an older kernel is
/// refused, naming what it lacks, before anything touches netlink. FWENFORCERD_IGNORE_KERNEL_VERSION=1
/// turns the refusal into a warning, for a kernel with the features backported under an older
/// version number (docs/kernel.md), and for testing what an old kernel does.
func requireSupportedKernel(logger: Logger? = nil) throws {
    do {
        try KernelRequirements.check()
    } catch {
        let ignored = ProcessInfo.processInfo.environment["FWENFORCERD_IGNORE_KERNEL_VERSION"] == "1"
        let text = ignored ? "\(error) (FWENFORCERD_IGNORE_KERNEL_VERSION=1: continuing)" : "\(error)"
        switch (logger, ignored) {
        case (let logger?, false): logger.critical("\(text)")
        case (let logger?, true): logger.warning("\(text)")
        case (nil, false): printError("error: \(text)")
        case (nil, true): printError("warning: \(text)")
        }
        if !ignored { throw ExitCode(1) }
    }
}
