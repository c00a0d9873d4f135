import Foundation

/// Polls `condition` every 20 ms until it holds or `seconds` pass, and says whether it held: the
/// one way the tests wait for the kernel, a daemon or a peer to reach a state, instead of sleeping
/// for a guessed time.
func eventually(_ seconds: Double = 3, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try condition() { return true }
        usleep(20_000)
    } while Date() < deadline
    return try condition()
}
